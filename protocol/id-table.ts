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
  #entries: Record<number, V> = Object.create(null) as Record<number, V>;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): V | undefined {
    return this.#entries[id];
  }

  has(id: number): boolean {
    return id in this.#entries;
  }

  set(id: number, value: V): void {
    if (!(id in this.#entries)) this.#size++;
    this.#entries[id] = value;
  }

  delete(id: number): boolean {
    if (!(id in this.#entries)) return false;
    delete this.#entries[id];
    this.#size--;
    return true;
  }

  /** A copy, in ascending id order (the order ids are given out in): safe to change the table while going through it. */
  values(): V[] {
    const values: V[] = [];
    for (const id in this.#entries) values.push(this.#entries[id as unknown as number]!);
    return values;
  }

  /** The ids, ascending, as a copy. */
  ids(): number[] {
    const ids: number[] = [];
    for (const id in this.#entries) ids.push(Number(id));
    return ids;
  }

  clear(): void {
    // The turn meter clears its owners every turn, mostly empty: no new dictionary for those.
    if (this.#size === 0) return;
    this.#entries = Object.create(null) as Record<number, V>;
    this.#size = 0;
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

  /** The ids, ascending, as a copy. */
  ids(): number[] {
    return this.#table.ids();
  }

  clear(): void {
    this.#table.clear();
  }
}
