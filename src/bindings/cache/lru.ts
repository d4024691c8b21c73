/**
 * A least-recently-used map bounded by bytes, not by count: one per worker,
 * holding every cache of that worker. A Map iterates in insertion order, so
 * re-inserting on use keeps the least recently used entry first, and eviction
 * takes from the front: O(1) per operation, no linked list of our own.
 */

interface Slot<V> {
  value: V;
  bytes: number;
}

export class ByteLru<V> {
  readonly #slots = new Map<string, Slot<V>>();
  #bytes = 0;

  /** Bytes of every entry held. */
  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#slots.size;
  }

  /** The value, marked most recently used. Per cache.match: allocates nothing. */
  get(key: string): V | undefined {
    const slot = this.#slots.get(key);
    if (!slot) return undefined;
    this.#slots.delete(key);
    this.#slots.set(key, slot);
    return slot.value;
  }

  /** The value, its recency unchanged. */
  peek(key: string): V | undefined {
    return this.#slots.get(key)?.value;
  }

  /**
   * Stores `value` as most recently used, replacing what `key` held, after evicting least
   * recently used entries until it fits in `limitBytes`. Returns how many entries were evicted.
   * The caller decides what to do with an entry larger than the whole limit; here it is a bug.
   */
  set(key: string, value: V, bytes: number, limitBytes: number): number {
    if (bytes > limitBytes) {
      throw new RangeError(`ByteLru.set: an entry of ${bytes} bytes cannot fit in a limit of ${limitBytes} bytes`);
    }
    this.delete(key);
    let evicted = 0;
    for (const [oldest, slot] of this.#slots) {
      if (this.#bytes + bytes <= limitBytes) break;
      this.#slots.delete(oldest);
      this.#bytes -= slot.bytes;
      evicted++;
    }
    this.#slots.set(key, { value, bytes });
    this.#bytes += bytes;
    return evicted;
  }

  delete(key: string): boolean {
    const slot = this.#slots.get(key);
    if (!slot) return false;
    this.#slots.delete(key);
    this.#bytes -= slot.bytes;
    return true;
  }
}
