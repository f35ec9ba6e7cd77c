/**
 * Lines that show a run is alive while onnxruntime holds the main thread. Creating a session and
 * running a step block Node's event loop (measured: no timer fires during a 410 ms session build), so
 * a big model's minute-long build or first step would print nothing. A small helper thread keeps
 * time instead and, when nothing has been printed for `everySeconds`, writes
 * `  ... still <what> (<elapsed>)` straight to the file descriptor (a worker's process.stderr would
 * go through the blocked main thread).
 */
import { Worker } from "node:worker_threads";

const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const { writeSync } = require("node:fs");
const { fd, everyMs } = workerData;
let what = null;
let since = 0;
let last = 0;
const fmt = (ms) => { const s = Math.round(ms / 1000); return s < 60 ? s + "s" : Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s"; };
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
`;

export class Heartbeat {
  private readonly worker: Worker;

  /** `fd`: where the lines go (2: stderr). */
  constructor(fd: number, everySeconds: number) {
    this.worker = new Worker(THREAD, { eval: true, workerData: { fd, everyMs: everySeconds * 1000 } });
    // The thread never keeps the process alive, and a failure of it is never the run's.
    this.worker.unref();
    this.worker.on("error", () => {});
  }

  /** From now on, `what` is what the run is doing ("creating the onnxruntime session"). */
  phase(what: string): void {
    this.worker.postMessage({ kind: "phase", what });
  }

  /** Something was printed: the silence starts again. */
  printed(): void {
    this.worker.postMessage({ kind: "printed" });
  }

  /** Nothing long is running. */
  idle(): void {
    this.worker.postMessage({ kind: "idle" });
  }

  close(): void {
    void this.worker.terminate();
  }
}
