/**
 * Stopping a training run on Ctrl-C (SIGINT) or SIGTERM. The first signal asks the trainer to stop at
 * its next safe point: between micro-batches, and never inside a checkpoint write (the trainer only
 * looks between steps and micro-batches). It then rejects with TrainingInterrupted, which the CLI
 * prints as one line saying where it stopped and how to go on, and exits 130 (SIGINT) or 143
 * (SIGTERM), the codes a shell reports for a process those signals end. A second signal exits at once.
 */

export type StopSignal = "SIGINT" | "SIGTERM";

export interface InterruptInfo {
  signal: StopSignal;
  /** Optimizer steps completed (a step cut short is not counted: a resume does it again). */
  step: number;
  totalSteps: number;
  out: string;
  /** The newest checkpoint in `out`, the one --resume goes on from; null when there is none. */
  lastCheckpoint: string | null;
  /** A --force run that was replacing a non-empty `out`: its own folder is gone, `out` is as it was. */
  discarded: boolean;
  saveEvery?: number;
}

export class TrainingInterrupted extends Error {
  override name = "TrainingInterrupted";
  constructor(readonly info: InterruptInfo) {
    super(`interrupted (${info.signal}) at step ${info.step} of ${info.totalSteps}`);
  }
}

export function exitCodeFor(signal: StopSignal): number {
  return signal === "SIGINT" ? 130 : 143;
}

/** The line printed on an interrupt; `rerun(flag)` is the same command with --resume or --force. */
export function interruptLine(i: InterruptInfo, rerun: (flag: "--resume" | "--force") => string): string {
  const at = `interrupted at step ${i.step} of ${i.totalSteps}`;
  if (i.discarded)
    return `${at}; --force was replacing ${i.out}, which is left as it was (nothing of this run is kept)`;
  if (i.lastCheckpoint)
    return `${at}; resume with: ${rerun("--resume")} (last checkpoint: ${i.lastCheckpoint})`;
  if (i.saveEvery)
    return `${at}; nothing was saved (the first checkpoint was due at step ${i.saveEvery}); start again with: ${rerun("--force")}`;
  return `${at}; nothing was saved (no --save-every, so no checkpoint to resume from); start again with: ${rerun("--force")} --save-every N`;
}

/**
 * Listens for SIGINT and SIGTERM until dispose(): the first aborts `signal` (its reason is the
 * signal's name), a second exits the process at once. While `atOnce()` returns a line (before the
 * run has written anything, say), the first signal prints it and exits at once too: loading a model
 * can take minutes, and there is nothing to stop cleanly.
 */
export function watchStopSignals(atOnce: () => string | null = () => null): {
  signal: AbortSignal;
  dispose(): void;
} {
  const controller = new AbortController();
  const handler = (sig: StopSignal) => () => {
    const line = controller.signal.aborted ? null : atOnce();
    if (line !== null) {
      process.stderr.write(`${line}\n`);
      process.exit(exitCodeFor(sig));
    }
    if (!controller.signal.aborted) {
      controller.abort(sig);
      return;
    }
    process.stderr.write(`interrupted again (${sig}): stopping at once, in the middle of a step\n`);
    process.exit(exitCodeFor(sig));
  };
  const onInt = handler("SIGINT");
  const onTerm = handler("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  return {
    signal: controller.signal,
    dispose() {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    },
  };
}

/** The stop signal an aborted AbortSignal carries (SIGINT when it carries none). */
export function stopSignalOf(signal: AbortSignal): StopSignal {
  return signal.reason === "SIGTERM" ? "SIGTERM" : "SIGINT";
}
