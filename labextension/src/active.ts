/**
 * The `active` notice of the notebook link: which cell the user is in, so the agent knows
 * where "here" is. Sent when the active cell changes, at most once per interval (the last
 * value wins; moving through cells with the arrow keys sends a few notices, not one per
 * cell), never twice in a row for the same cell, and again right after each `hello`.
 */

export const ACTIVE_INTERVAL_MS = 200;

export class ActiveCellNotices {
  private last: string | null | undefined = undefined; // undefined: none sent on this socket
  private lastAt = -Infinity;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly current: () => string | null,
    private readonly send: (cellId: string | null) => void,
    private readonly interval = ACTIVE_INTERVAL_MS,
    private readonly now: () => number = () => Date.now()
  ) {}

  /** The active cell changed: send it now, or when the interval since the last one ends. */
  changed(): void {
    if (this.timer !== null) {
      return; // the timer sends whatever is current when it fires
    }
    const wait = this.lastAt + this.interval - this.now();
    if (wait <= 0) {
      this.flush();
    } else {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, wait);
    }
  }

  /** A new socket said hello: send the current cell at once. */
  restart(): void {
    this.cancel();
    this.last = undefined;
    this.flush();
  }

  dispose(): void {
    this.cancel();
  }

  private cancel(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private flush(): void {
    const id = this.current();
    if (id === this.last) {
      return;
    }
    this.last = id;
    this.lastAt = this.now();
    this.send(id);
  }
}
