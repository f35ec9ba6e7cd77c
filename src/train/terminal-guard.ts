/**
 * Keeps the heartbeat's spinner (heartbeat.ts) from being written over. The spinner line has no
 * newline, so anything the main thread writes while it is drawn would be appended to it: our own lines
 * and bar, but also lines we do not control (the CLI's error message when a run fails, the interrupt
 * line on Ctrl-C, a library's console.warn). Wrapping the stream's write catches all of them, the way
 * terminal UIs patch the console, instead of relying on every writer to remember to erase first.
 */
import type { Heartbeat } from "./heartbeat.js";

type Writer = { write: (...args: never[]) => boolean };

export interface TerminalGuard {
  /** Runs `f`, whose writes are the reporter's own: the spinner may come back after the silence. */
  own<T>(f: () => T): T;
  /** Puts the stream's write back (if nobody has wrapped it since). */
  release(): void;
}

export function guardTerminal(stream: Writer, heartbeat: Heartbeat): TerminalGuard {
  let ours = 0;
  const hadOwn = Object.hasOwn(stream, "write");
  const original = stream.write;
  // The spinner is erased before the bytes go out and cannot come back while they do. A write that
  // is not ours may be an error or an interrupt line, after which the run is ending: no spinner again
  // until the next phase.
  const guarded = (...args: never[]): boolean =>
    heartbeat.writing(() => original.apply(stream, args), ours === 0);
  stream.write = guarded;
  return {
    own(f) {
      ours++;
      try {
        return f();
      } finally {
        ours--;
      }
    },
    release() {
      if (stream.write !== guarded) return;
      if (hadOwn) stream.write = original;
      else delete (stream as Partial<Writer>).write;
    },
  };
}
