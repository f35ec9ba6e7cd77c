/**
 * Shows a run is alive while onnxruntime holds the main thread. Creating a session and running a step
 * block Node's event loop (measured: no timer fires during a 410 ms session build), so a big model's
 * minute-long build or first step would show nothing. A small helper thread keeps time instead and
 * writes straight to the file descriptor (a worker's process.stderr would go through the blocked main
 * thread):
 * - off a terminal (logs, pipes, CI), when nothing has been printed for `everySeconds`, a line
 *   `  ... still <what> (<elapsed>)`;
 * - on a terminal, after `quietMs` of silence, a spinner line `⠋ <what> <elapsed><detail>` redrawn in
 *   place, erased before anything else is written (see terminal-guard.ts for how writes are caught).
 *
 * The two threads share the terminal, so their writes are ordered by a lock in a SharedArrayBuffer:
 * the worker draws a frame only while holding it, and the main thread holds it while it writes, having
 * erased a drawn frame first. A postMessage would arrive too late (the worker might draw between the
 * main thread's decision to print and its print); Atomics are seen at once by both threads.
 */
import { writeSync } from "node:fs";
import { Worker } from "node:worker_threads";

/** Back to column 0 and clear the whole line: how a spinner frame starts and how it is erased. */
export const ERASE = "\r\x1b[2K";

// Slots of the shared Int32Array (terminal mode).
/** 1 while a thread writes to the terminal. */
const LOCK = 0;
/** The phase the worker may draw (0: none); the main thread moves it, synchronously. */
const SEQ = 1;
/** 1 while a spinner frame is on the screen (nothing written over it since). */
const DRAWN = 2;
/** Counts the main thread's writes: the worker sees a change and waits `quietMs` again. */
const PRINTS = 3;

const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const { writeSync } = require("node:fs");
const { fd, everyMs, tty, quietMs, frameMs, shared, slots } = workerData;
const fmt = (ms) => { const s = Math.round(ms / 1000); return s < 60 ? s + "s" : Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s"; };
if (!tty) {
  let what = null;
  let since = 0;
  let last = 0;
  parentPort.on("message", (m) => {
    const now = Date.now();
    if (m.kind === "phase") { what = m.what; since = now; last = now; }
    else if (m.kind === "printed") { last = now; }
    else if (m.kind === "idle") { what = null; }
  });
  setInterval(() => {
    const now = Date.now();
    if (what === null || now - last < everyMs) return;
    try { writeSync(fd, "  ... still " + what + " (" + fmt(now - since) + ")\\n"); } catch {}
    last = now;
  }, Math.max(10, Math.min(1000, everyMs / 4)));
} else {
  const s = new Int32Array(shared);
  const { LOCK, SEQ, DRAWN, PRINTS } = slots;
  const FRAMES = ${JSON.stringify([..."⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"])};
  let cur = null; // { seq, what, detail, columns, since }
  let last = 0; // the last write seen from the main thread, or the phase's start
  let seen = 0;
  let frame = 0;
  parentPort.on("message", (m) => { cur = m; last = Math.max(last, m.since); });
  setInterval(() => {
    if (cur === null || Atomics.load(s, SEQ) !== cur.seq) return;
    // Never wait here: the main thread holds the lock only around a write; the next frame will do.
    if (Atomics.compareExchange(s, LOCK, 0, 1) !== 0) return;
    try {
      const now = Date.now();
      const p = Atomics.load(s, PRINTS);
      if (p !== seen) { seen = p; last = now; }
      // Checked again under the lock: the phase may have ended since.
      if (Atomics.load(s, SEQ) !== cur.seq) return;
      // A frame still on the screen is redrawn at once (a new phase takes its line over).
      if (Atomics.load(s, DRAWN) === 0 && now - last < quietMs) return;
      const text = FRAMES[frame++ % FRAMES.length] + " " + cur.what + " " + fmt(now - cur.since) + cur.detail;
      // One column short of the width: a full line would wrap on some terminals, and the erase
      // (which clears the cursor's line only) would leave the first row behind.
      writeSync(fd, ${JSON.stringify(ERASE)} + [...text].slice(0, Math.max(1, cur.columns - 1)).join(""));
      Atomics.store(s, DRAWN, 1);
    } catch {
    } finally {
      Atomics.store(s, LOCK, 0);
      Atomics.notify(s, LOCK);
    }
  }, frameMs);
}
`;

export interface HeartbeatOptions {
  /** A terminal: a spinner line redrawn in place instead of "... still" lines. */
  tty?: boolean;
  /** Terminal mode: the spinner appears after this much silence, in ms (default 1000). */
  quietMs?: number;
  /** Terminal mode: ms between frames (default 120). */
  frameMs?: number;
}

/** Terminal mode: how a phase is drawn. */
export interface PhaseLook {
  /** Appended after the elapsed time (" | loss 2.1234 | ETA 40s"). */
  detail?: string;
  /** The terminal's width; the line is cut to fit (default 80). */
  columns?: number;
}

export class Heartbeat {
  private readonly worker: Worker;
  private readonly shared: Int32Array | null;
  private seq = 0;
  private closed = false;
  /** The main thread holds the lock (a write from inside a write must not wait for it). */
  private holding = false;

  /** `fd`: where the lines go (2: stderr). `everySeconds`: the silence before a "still" line. */
  constructor(
    private readonly fd: number,
    everySeconds: number,
    opts: HeartbeatOptions = {},
  ) {
    const tty = opts.tty === true;
    this.shared = tty ? new Int32Array(new SharedArrayBuffer(16)) : null;
    this.worker = new Worker(THREAD, {
      eval: true,
      workerData: {
        fd,
        everyMs: everySeconds * 1000,
        tty,
        quietMs: opts.quietMs ?? 1000,
        frameMs: opts.frameMs ?? 120,
        shared: this.shared?.buffer ?? null,
        slots: { LOCK, SEQ, DRAWN, PRINTS },
      },
    });
    // The thread never keeps the process alive, and a failure of it is never the run's.
    this.worker.unref();
    this.worker.on("error", () => {});
  }

  /** From now on, `what` is what the run is doing ("creating the onnxruntime session"). */
  phase(what: string, look: PhaseLook = {}): void {
    if (this.shared === null) {
      this.worker.postMessage({ kind: "phase", what });
      return;
    }
    const seq = ++this.seq;
    const columns = look.columns ?? 80;
    this.worker.postMessage({ seq, what, detail: look.detail ?? "", columns, since: Date.now() });
    // Until its message arrives the worker holds an older phase, which no longer matches: no frame.
    Atomics.store(this.shared, SEQ, seq);
  }

  /**
   * Something was printed: the silence starts again. Terminal mode: a spinner is erased now, but
   * writing() is the safe way to print there (it also keeps a frame out until the bytes are out).
   */
  printed(): void {
    if (this.shared === null) this.worker.postMessage({ kind: "printed" });
    else this.clear(false);
  }

  /** Nothing long is running (terminal: the spinner is erased now). True if a frame was erased. */
  idle(): boolean {
    if (this.shared !== null) return this.clear(true);
    this.worker.postMessage({ kind: "idle" });
    return false;
  }

  /**
   * Terminal mode: runs the main thread's `write` with the terminal to itself: a drawn frame is erased
   * first, and the lock is held until `write` returns, so no frame can come between the erase and the
   * bytes (a preempted main thread once let one in, in a test). The stream must write synchronously.
   * `end`: the phase is over too (no frame until the next one). Elsewhere it only runs `write`.
   */
  writing<T>(write: () => T, end: boolean): T {
    let result: T | undefined;
    this.clear(end, () => {
      result = write();
    });
    return result as T;
  }

  close(): void {
    if (this.shared !== null && !this.closed) this.clear(true);
    this.closed = true;
    void this.worker.terminate();
  }

  /** Erases a drawn frame under the lock (true if there was one), then runs `write`, still under it. */
  private clear(end: boolean, write?: () => void): boolean {
    const s = this.shared;
    if (s === null || this.closed || this.holding) {
      // Not a terminal, or a write inside a write (the lock is ours already).
      if (s !== null && end) Atomics.store(s, SEQ, 0);
      write?.();
      return false;
    }
    const locked = lock(s);
    this.holding = true;
    try {
      if (end) Atomics.store(s, SEQ, 0);
      Atomics.add(s, PRINTS, 1);
      let erased = false;
      if (Atomics.load(s, DRAWN) === 1) {
        Atomics.store(s, DRAWN, 0);
        try {
          writeSync(this.fd, ERASE);
          erased = true;
        } catch {
          // A closed descriptor: there is nothing to erase on.
        }
      }
      write?.();
      return erased;
    } finally {
      this.holding = false;
      if (locked) {
        Atomics.store(s, LOCK, 0);
        Atomics.notify(s, LOCK);
      }
    }
  }
}

/**
 * Takes the lock, waiting at most ~50 ms: the worker holds it only around one small write, so a longer
 * wait means a stuck terminal or a dead thread, and a garbled line is better than a hung run. (The
 * worker never waits: it skips a frame.)
 */
function lock(s: Int32Array): boolean {
  for (let i = 0; i < 50; i++) {
    if (Atomics.compareExchange(s, LOCK, 0, 1) === 0) return true;
    Atomics.wait(s, LOCK, 1, 1);
  }
  return false;
}
