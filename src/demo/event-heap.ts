/**
 * The pending-event set of one PHOLD node: a binary min-heap ordered by
 * (timestamp, event id).
 *
 * The id breaks timestamp ties, so the processing order — and with it every
 * random draw of the model — depends only on the set of pending events, never on
 * the order in which they arrived. That is what makes a seeded run reproducible.
 *
 * Fields are kept in three parallel arrays (struct of arrays): pushing and popping
 * allocate nothing once the arrays have grown to the population size.
 */

/** One event taken off the heap; reused by the caller between pops. */
export interface PendingEvent {
  ts: number;
  id: number;
  hops: number;
}

/** Min-heap of pending events; see the file header. */
export class EventHeap {
  private readonly ts: number[] = [];
  private readonly ids: number[] = [];
  private readonly hops: number[] = [];

  /** Events currently pending. */
  get size(): number {
    return this.ts.length;
  }

  /** Timestamp of the earliest event, or +Infinity when empty. */
  peekTs(): number {
    return this.ts.length === 0 ? Number.POSITIVE_INFINITY : this.ts[0]!;
  }

  /** Adds an event. */
  push(ts: number, id: number, hops: number): void {
    let i = this.ts.length;
    this.ts.push(ts);
    this.ids.push(id);
    this.hops.push(hops);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /**
   * Removes the earliest event into `out`.
   * @throws {RangeError} when the heap is empty.
   */
  popInto(out: PendingEvent): void {
    const last = this.ts.length - 1;
    if (last < 0) throw new RangeError('popInto on an empty EventHeap');
    out.ts = this.ts[0]!;
    out.id = this.ids[0]!;
    out.hops = this.hops[0]!;
    this.swap(0, last);
    this.ts.pop();
    this.ids.pop();
    this.hops.pop();
    this.siftDown(0, last);
  }

  private siftDown(start: number, size: number): void {
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= size) return;
      const right = left + 1;
      const child = right < size && this.less(right, left) ? right : left;
      if (!this.less(child, i)) return;
      this.swap(i, child);
      i = child;
    }
  }

  private less(a: number, b: number): boolean {
    const ta = this.ts[a]!;
    const tb = this.ts[b]!;
    return ta < tb || (ta === tb && this.ids[a]! < this.ids[b]!);
  }

  private swap(a: number, b: number): void {
    const t = this.ts[a]!;
    this.ts[a] = this.ts[b]!;
    this.ts[b] = t;
    const id = this.ids[a]!;
    this.ids[a] = this.ids[b]!;
    this.ids[b] = id;
    const h = this.hops[a]!;
    this.hops[a] = this.hops[b]!;
    this.hops[b] = h;
  }
}
