/**
 * How many bytes of QMP input the collector decodes per turn of the event loop, shared by every
 * connection. A chunk over the turn's budget waits for a later turn with its socket paused
 * (the kernel's buffer and QEMU's hold the rest), so the other work of the loop gets its turn
 * while a fleet talks at once: the spool's group commit (`setImmediate`), Kafka's answers and
 * `/metrics`.
 *
 * Why: libuv reads each ready socket up to 32 × 64 KiB per wake-up and only then runs the
 * immediates, so without a bound 100 VMs that each had megabytes queued were decoded in one
 * turn of seconds — measured 1.75 s in `npm run bench -- --only collector` — during which the
 * spool was not written and the Kafka answer already on the wire was not read: reading and
 * sending ran one after the other instead of side by side (docs/decisions.md, "Collector
 * throughput").
 */

interface Waiting {
  readonly bytes: number;
  readonly run: () => void;
}

export class ReadBudget {
  private readonly bytesPerTurn: number;
  private spent = 0;
  private turnScheduled = false;
  private readonly waiting: Waiting[] = [];

  constructor(bytesPerTurn: number) {
    this.bytesPerTurn = bytesPerTurn;
  }

  /** Chunks waiting for a later turn. */
  get pending(): number {
    return this.waiting.length;
  }

  /**
   * True when `bytes` may be decoded now (and spends them). Otherwise `later` runs in a later
   * turn, after every chunk that was waiting before it; the caller pauses its socket until then.
   * At least one chunk runs per turn, whatever its size.
   */
  admit(bytes: number, later: () => void): boolean {
    this.scheduleTurn();
    if (this.waiting.length === 0 && this.spent < this.bytesPerTurn) {
      this.spent += bytes;
      return true;
    }
    this.waiting.push({ bytes, run: later });
    return false;
  }

  /** Runs `run` now if it is still waiting (a socket closing must decode what it read first). */
  runNow(run: () => void): void {
    const index = this.waiting.findIndex((w) => w.run === run);
    if (index === -1) return;
    this.waiting.splice(index, 1);
    run();
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    setImmediate(() => this.turn());
  }

  private turn(): void {
    this.turnScheduled = false;
    this.spent = 0;
    while (this.waiting.length > 0 && (this.spent === 0 || this.spent < this.bytesPerTurn)) {
      const next = this.waiting.shift() as Waiting;
      this.spent += next.bytes;
      next.run();
    }
    // Another turn resets what this one spent, or runs what still waits.
    if (this.spent > 0 || this.waiting.length > 0) this.scheduleTurn();
  }
}
