/**
 * Values by numeric id, for the tables both sides keep an entry in per request
 * in flight (streams, exchanges, the requests a turn is charged to).
 *
 * Not a Map or a Set, on purpose. V8 links each hash table a Map or Set outgrows
 * to the table that replaces it (so that live iterators can follow), and keeps the
 * old table's entries. A table in the old generation, which a full collection
 * while the process is idle puts there (V8's memory reducer does, seconds after a
 * burst), then keeps its successor alive through every scavenge even once it is
 * dead itself; the successor is promoted, keeps the next one alive, and so on: every
 * table from then on, with every request whose entry it held, survives into the old
 * generation, until a full collection, which starts the chain again from the live
 * table. Measured in the daemon under wrk: after one such collection, scavenges
 * promoted 1.8 MB each instead of 3 KB, GC time per request went from 1 to 7–11 µs,
 * and the throughput of the rounds that followed fell by a fifth to a half. Arrays and
 * typed arrays have no such link between the stores they outgrow.
 */

/** The smallest index: a power of two (the hash takes its top bits). */
const MIN_INDEX = 16;

export class IdTable<V> {
  // Dense arrays for going through the table (a for-in over a dictionary of numeric keys
  // stringifies and sorts every key: 7% of the daemon's busy time under wrk when the
  // watchdog's per-settle reconcile went through ~32 requests that way), and an index from
  // id to slot for lookups. A deletion moves the last entry into the freed slot.
  //
  // The index is open addressing over an Int32Array (slot + 1; 0 is empty), not an object
  // keyed by id: ids only grow, so such an object soon has sparse elements, which V8 keeps in
  // a dictionary it hashes with SipHash and reaches through its runtime on every set and
  // delete (halfsiphash, LookupIterator and AddDataElement were ~4% of a hello child's CPU
  // under wrk). A set, two gets and a delete took ~400 ns that way and ~60 this way.
  #index = new Int32Array(MIN_INDEX);
  #shift = 32 - Math.log2(MIN_INDEX);
  readonly #ids: number[] = [];
  readonly #values: V[] = [];

  get size(): number {
    return this.#ids.length;
  }

  get(id: number): V | undefined {
    const at = this.#find(id);
    return at < 0 ? undefined : this.#values[this.#index[at]! - 1];
  }

  has(id: number): boolean {
    return this.#find(id) >= 0;
  }

  set(id: number, value: V): void {
    const at = this.#find(id);
    if (at >= 0) {
      this.#values[this.#index[at]! - 1] = value;
      return;
    }
    // At most half full, so that a probe stays short.
    if ((this.#ids.length + 1) * 2 > this.#index.length) this.#resize(this.#index.length * 2);
    this.#ids.push(id);
    this.#values.push(value);
    this.#place(id, this.#ids.length);
  }

  delete(id: number): boolean {
    const at = this.#find(id);
    if (at < 0) return false;
    const slot = this.#index[at]! - 1;
    this.#unplace(at);
    const last = this.#ids.length - 1;
    if (slot !== last) {
      const moved = this.#ids[last]!;
      this.#ids[slot] = moved;
      this.#values[slot] = this.#values[last]!;
      this.#index[this.#find(moved)] = slot + 1;
    }
    this.#ids.pop();
    this.#values.pop();
    return true;
  }

  /** A copy, in no particular order: safe to change the table while going through it. */
  values(): V[] {
    return this.#values.slice();
  }

  /**
   * The values themselves, without a copy, for the hot paths that only read them. The
   * table must not change while the caller goes through them.
   */
  live(): readonly V[] {
    return this.#values;
  }

  /** The ids, in no particular order, as a copy. */
  ids(): number[] {
    return this.#ids.slice();
  }

  /** The ids without a copy; as live(), the table must not change meanwhile. */
  liveIds(): readonly number[] {
    return this.#ids;
  }

  clear(): void {
    // The turn meter clears its owners every turn, mostly empty: nothing to do for those.
    if (this.#ids.length === 0) return;
    // Emptied first: #resize files every id still in the table into the new index.
    this.#ids.length = 0;
    this.#values.length = 0;
    if (this.#index.length > MIN_INDEX * 4) this.#resize(MIN_INDEX);
    else this.#index.fill(0);
  }

  /** Where `id` starts its probe: Fibonacci hashing, which spreads ids that count up evenly. */
  #home(id: number): number {
    return Math.imul(id | 0, 0x9e3779b1) >>> this.#shift;
  }

  /** The index position holding `id`, or -1. */
  #find(id: number): number {
    const index = this.#index;
    const mask = index.length - 1;
    for (let at = this.#home(id); ; at = (at + 1) & mask) {
      const entry = index[at]!;
      if (entry === 0) return -1;
      if (this.#ids[entry - 1] === id) return at;
    }
  }

  /** Files `id`, which is not in the index, under dense slot `slotPlusOne` - 1. */
  #place(id: number, slotPlusOne: number): void {
    const index = this.#index;
    const mask = index.length - 1;
    let at = this.#home(id);
    while (index[at] !== 0) at = (at + 1) & mask;
    index[at] = slotPlusOne;
  }

  /** Empties position `hole`, moving back the entries after it that would no longer be found. */
  #unplace(hole: number): void {
    const index = this.#index;
    const mask = index.length - 1;
    for (let at = (hole + 1) & mask; index[at] !== 0; at = (at + 1) & mask) {
      const home = this.#home(this.#ids[index[at]! - 1]!);
      // The entry stays if its home lies in (hole, at], cyclically: its probe never passes the hole.
      const stays = hole < at ? home > hole && home <= at : home > hole || home <= at;
      if (!stays) {
        index[hole] = index[at]!;
        hole = at;
      }
    }
    index[hole] = 0;
  }

  #resize(size: number): void {
    this.#index = new Int32Array(size);
    this.#shift = 32 - Math.log2(size);
    for (let slot = 0; slot < this.#ids.length; slot++) this.#place(this.#ids[slot]!, slot + 1);
  }
}

/** A set of numeric ids, for the same reason as IdTable. */
export class IdSet {
  readonly #table = new IdTable<true>();

  get size(): number {
    return this.#table.size;
  }

  add(id: number): void {
    this.#table.set(id, true);
  }

  has(id: number): boolean {
    return this.#table.has(id);
  }

  delete(id: number): boolean {
    return this.#table.delete(id);
  }

  /** The ids, in no particular order, as a copy. */
  ids(): number[] {
    return this.#table.ids();
  }

  /** The ids without a copy: the set must not change while the caller goes through them. */
  liveIds(): readonly number[] {
    return this.#table.liveIds();
  }

  clear(): void {
    this.#table.clear();
  }
}
