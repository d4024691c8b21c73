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
 * and the throughput of the rounds that followed fell by a fifth to a half. An object
 * used as a dictionary has no such link between its tables.
 */
export class IdTable<V> {
  // Dense arrays for going through the table (a for-in over a dictionary of numeric keys
  // stringifies and sorts every key: 7% of the daemon's busy time under wrk when the
  // watchdog's per-settle reconcile went through ~32 requests that way), and a dictionary
  // from id to slot for lookups. A deletion moves the last entry into the freed slot.
  #slots: Record<number, number> = Object.create(null) as Record<number, number>;
  readonly #ids: number[] = [];
  readonly #values: V[] = [];

  get size(): number {
    return this.#ids.length;
  }

  get(id: number): V | undefined {
    const slot = this.#slots[id];
    return slot === undefined ? undefined : this.#values[slot];
  }

  has(id: number): boolean {
    return this.#slots[id] !== undefined;
  }

  set(id: number, value: V): void {
    const slot = this.#slots[id];
    if (slot !== undefined) {
      this.#values[slot] = value;
      return;
    }
    this.#slots[id] = this.#ids.length;
    this.#ids.push(id);
    this.#values.push(value);
  }

  delete(id: number): boolean {
    const slot = this.#slots[id];
    if (slot === undefined) return false;
    delete this.#slots[id];
    const last = this.#ids.length - 1;
    if (slot !== last) {
      const moved = this.#ids[last]!;
      this.#ids[slot] = moved;
      this.#values[slot] = this.#values[last]!;
      this.#slots[moved] = slot;
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
    // The turn meter clears its owners every turn, mostly empty: no new dictionary for those.
    if (this.#ids.length === 0) return;
    this.#slots = Object.create(null) as Record<number, number>;
    this.#ids.length = 0;
    this.#values.length = 0;
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
