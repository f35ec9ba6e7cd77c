/**
 * What the user sees while a run trains. On a terminal: one redrawn progress bar (cli-progress) with
 * step/total, loss (EMA-smoothed and the last value), learning rate, tokens/s and ETA; eval results and
 * checkpoints are printed as their own lines above it. Elsewhere (CI logs, pipes, files): one plain line
 * every N steps, N chosen so a run prints about 20 of them, plus the first and the last step, and at
 * least one every 30 s of wall time (so a slow run still shows it is alive). LORA_TS_PROGRESS_SECONDS
 * sets that interval (0: every step), for tests that cannot wait 30 s. While onnxruntime holds the
 * main thread (a session being created, a long step), a helper thread (heartbeat.ts) prints a
 * "still ..." line after the same silence, so a big model's minutes of build are never silent; on a
 * terminal it draws a spinner line instead (over the bar's line during a step), after 1 s of silence,
 * erased before anything else is written (terminal-guard.ts).
 *
 * Data preparation (onDataProgress), before all that: on a terminal one live line (rows, tokens, tokens/s,
 * percent and ETA by bytes read) redrawn in place and replaced by a final line when done; elsewhere a
 * line when it starts, one at least every 30 s (the same interval) and a final one. With --no-progress
 * the CLI still prints the start and final lines (dataPreparationLines), so a long preparation is never
 * silent.
 */
import { basename } from "node:path";
import cliProgress from "cli-progress";
import { LoraTsError } from "../util/errors.js";
import type { DataProgress, EvalMetrics, StepMetrics, TrainerEvents, TrainStart } from "./events.js";
import { Heartbeat } from "./heartbeat.js";
import { guardTerminal, type TerminalGuard } from "./terminal-guard.js";

/** Where progress goes: a terminal (isTTY true) gets a bar, anything else plain lines. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

export interface ProgressOptions {
  /** Default process.stderr, so that stdout stays clean for results. */
  stream?: ProgressStream;
  /** false: report nothing. Default true. */
  enabled?: boolean;
  /** Plain-line mode: print every this many steps (default: about 20 lines per run). */
  everySteps?: number;
  /**
   * Plain-line mode: also print a step once this many seconds have passed since the last line
   * (default: LORA_TS_PROGRESS_SECONDS, else 30).
   */
  everySeconds?: number;
  /** The clock, in ms (default Date.now; tests pass their own). */
  now?: () => number;
  /** Smoothing factor of the loss EMA (default 0.9). */
  emaBeta?: number;
  /**
   * The stream's file descriptor, which the heartbeat thread writes to (default: 2 for process.stderr,
   * 1 for process.stdout, else none and no heartbeat). On a terminal the stream must write
   * synchronously, as stderr does to a tty, a file or a pipe (not on Windows): the spinner thread is
   * kept off the terminal only while the stream's write call runs.
   */
  fd?: number;
}

/** Terminal mode: the silence before the spinner shows, so that a quick phase does not flash one. */
export const SPINNER_QUIET_MS = 1000;

/** Plain-line mode's longest silence, in seconds, unless LORA_TS_PROGRESS_SECONDS says otherwise. */
export const PLAIN_LINE_SECONDS = 30;

function secondsFromEnv(): number {
  const raw = process.env["LORA_TS_PROGRESS_SECONDS"];
  if (raw === undefined || raw === "") return PLAIN_LINE_SECONDS;
  const sec = Number(raw);
  if (!Number.isFinite(sec) || sec < 0)
    throw new LoraTsError(`LORA_TS_PROGRESS_SECONDS: expected a number of seconds >= 0, got "${raw}"`);
  return sec;
}

/** Lines per run in plain-line mode, besides the first and last step. */
export const PLAIN_LINES_PER_RUN = 20;

/** Running exponential moving average with bias correction (as Adam and TensorBoard do). */
export class LossEma {
  private m = 0;
  private n = 0;
  constructor(readonly beta = 0.9) {}
  push(x: number): number {
    if (!Number.isFinite(x)) return this.value;
    this.n++;
    this.m = this.beta * this.m + (1 - this.beta) * x;
    return this.value;
  }
  get value(): number {
    return this.n === 0 ? Number.NaN : this.m / (1 - this.beta ** this.n);
  }
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "?";
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, "0")}m`;
}

function fmtLoss(x: number, digits = 4): string {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

function fmtLr(x: number): string {
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

function fmtRate(x: number): string {
  if (!Number.isFinite(x)) return "?";
  if (x >= 100_000) return `${(x / 1000).toFixed(0)}k`;
  if (x >= 10_000) return `${(x / 1000).toFixed(1)}k`;
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

export function evalLine(m: EvalMetrics): string {
  return `eval @ step ${m.step}: loss ${fmtLoss(m.loss, 3)}, perplexity ${fmtLoss(m.perplexity, 2)}`;
}

export function checkpointLine(dir: string, step: number, removed: string[] = []): string {
  const gone = removed.length > 0 ? ` (removed ${removed.map((d) => basename(d)).join(", ")})` : "";
  return `checkpoint @ step ${step}: ${dir}${gone}`;
}

function fmtBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

function dataWhat(p: DataProgress, role: "train" | "val"): string {
  const name = p.files.length === 1 ? basename(p.files[0]!) : `${p.files.length} files`;
  return `${role === "val" ? "val data" : "data"} ${name}`;
}

/** The line that says preparation started. */
export function dataStartLine(p: DataProgress, role: "train" | "val"): string {
  const threads = p.workers === 1 ? "1 thread" : `${p.workers} threads`;
  return `preparing ${dataWhat(p, role)} (${fmtBytes(p.bytesTotal)}, ${threads})...`;
}

/** Where preparation stands: rows, tokens, tokens/s, and by bytes read, percent done and ETA. */
export function dataProgressLine(p: DataProgress, role: "train" | "val"): string {
  const frac = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 0;
  const eta = frac > 0 ? (p.seconds * (1 - frac)) / frac : Number.NaN;
  const rows = p.totalRows !== undefined ? `${fmtCount(p.rows)}/${fmtCount(p.totalRows)}` : fmtCount(p.rows);
  return (
    `preparing ${dataWhat(p, role)}: ${rows} rows | ${fmtCount(p.tokens)} tokens | ` +
    `${fmtRate(p.tokens / Math.max(p.seconds, 1e-9))} tok/s | ${(frac * 100).toFixed(0)}% | ETA ${formatDuration(eta)}`
  );
}

/** The line that says preparation is done. */
export function dataDoneLine(p: DataProgress, role: "train" | "val"): string {
  const threads = p.workers === 1 ? "1 thread" : `${p.workers} threads`;
  return (
    `prepared ${dataWhat(p, role)}: ${fmtCount(p.rows)} rows, ${fmtCount(p.tokens)} tokens in ` +
    `${formatDuration(p.seconds)} (${fmtRate(p.tokens / Math.max(p.seconds, 1e-9))} tok/s, ${threads})`
  );
}

/**
 * Data preparation's lines (see the module comment): `live` on a terminal, else plain lines every
 * `everyMs` (none between start and end when `everyMs` is Infinity: --no-progress).
 */
function dataProgressHandler(
  stream: ProgressStream,
  live: boolean,
  everyMs: number,
  clock: () => number,
): NonNullable<TrainerEvents["onDataProgress"]> {
  let lastAt = 0;
  let drawn = false;
  const ERASE_LINE = "\r\x1b[2K";
  // While the live line is drawn, any other write to the stream (an error, the line of a Ctrl-C
  // before training started) erases it first instead of being appended to it (as terminal-guard.ts
  // does for the spinner).
  let owning = false;
  let unguard: (() => void) | null = null;
  const write = (text: string) => {
    owning = true;
    try {
      stream.write(text);
    } finally {
      owning = false;
    }
  };
  const guard = () => {
    if (unguard !== null) return;
    const target = stream as { write: (...args: unknown[]) => boolean };
    const hadOwn = Object.hasOwn(target, "write");
    const original = target.write;
    const guarded = (...args: unknown[]): boolean => {
      if (drawn && !owning) {
        drawn = false;
        original.call(target, ERASE_LINE);
      }
      return original.apply(target, args);
    };
    target.write = guarded;
    unguard = () => {
      unguard = null;
      if (target.write !== guarded) return;
      if (hadOwn) target.write = original;
      else delete (target as Partial<typeof target>).write;
    };
  };
  return (p, role) => {
    const now = clock();
    if (p.stage === "start") {
      lastAt = now;
      if (!live) write(`${dataStartLine(p, role)}\n`);
      return;
    }
    if (p.stage === "running") {
      if (live) {
        if (now - lastAt < 200 && drawn) return;
        lastAt = now;
        // One column short of the width (a full line wraps on some terminals); 80 when unknown (0 in a
        // pseudo-terminal without a size).
        const cols = Math.max(20, (stream.columns || 80) - 1);
        guard();
        write(`${ERASE_LINE}${[...dataProgressLine(p, role)].slice(0, cols).join("")}`);
        drawn = true;
      } else if (now - lastAt >= everyMs) {
        lastAt = now;
        write(`${dataProgressLine(p, role)}\n`);
      }
      return;
    }
    if (drawn) write(ERASE_LINE);
    drawn = false;
    unguard?.();
    if (p.stage === "done") write(`${dataDoneLine(p, role)}\n`);
  };
}

/**
 * With --no-progress: only a line when preparation starts and one when it is done (on stdout, beside
 * the `data:` lines; stderr stays for errors), so that even then
 * a long preparation says what it is doing.
 */
export function dataPreparationLines(stream: ProgressStream = process.stdout): TrainerEvents {
  return { onDataProgress: dataProgressHandler(stream, false, Number.POSITIVE_INFINITY, Date.now) };
}

interface Shown {
  step: number;
  total: number | null;
  ema: number;
  last: number;
  lr: number;
  tps: number;
  etaSec: number;
}

function plainStepLine(s: Shown): string {
  const width = s.total === null ? 0 : String(s.total).length;
  const stepStr = s.total === null ? String(s.step) : `${String(s.step).padStart(width)}/${s.total}`;
  const eta = s.total === null ? "" : ` | ETA ${formatDuration(s.etaSec)}`;
  return (
    `step ${stepStr} | loss ${fmtLoss(s.ema)} (last ${fmtLoss(s.last)}) | lr ${fmtLr(s.lr)}` +
    ` | ${fmtRate(s.tps)} tok/s${eta}`
  );
}

/** The spinner's text after the running step and its time: how the last step went. */
function spinnerDetail(s: Shown): string {
  const eta = s.total === null ? "" : ` | ETA ${formatDuration(s.etaSec)}`;
  return ` | loss ${fmtLoss(s.ema)} (last ${fmtLoss(s.last)})${eta}`;
}

/** The internals of cli-progress's MultiBar that we touch (its redraw timer). */
interface MultiBarInternals {
  update(): void;
  timer: NodeJS.Timeout | null;
}

export function progressReporter(opts: ProgressOptions = {}): TrainerEvents {
  if (opts.enabled === false) return {};
  const stream: ProgressStream = opts.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const ema = new LossEma(opts.emaBeta ?? 0.9);
  const clock = opts.now ?? Date.now;
  const everyMs = (opts.everySeconds ?? secondsFromEnv()) * 1000;
  let lastPrintedAt = clock();

  let start: TrainStart | null = null;
  let t0: number | null = null;
  let firstStep: number | null = null; // step the timing is measured from (exclusive)
  let every = opts.everySteps ?? 0;
  let lastShown: Shown | null = null;
  let lastPrintedStep = -1;

  // Terminal mode: a MultiBar with a single bar, because it can print log lines above the bar.
  let multi: cliProgress.MultiBar | null = null;
  let bar: cliProgress.SingleBar | null = null;

  // Lines while onnxruntime blocks the event loop (heartbeat.ts), to a stream with a known descriptor.
  const fd = opts.fd ?? (stream === process.stderr ? 2 : stream === process.stdout ? 1 : null);
  let heartbeat: Heartbeat | null = null;
  // Terminal mode: every write to the stream erases the spinner first.
  let guard: TerminalGuard | null = null;
  const beat = () => {
    if (heartbeat !== null || fd === null || everyMs <= 0) return heartbeat;
    heartbeat = new Heartbeat(fd, everyMs / 1000, { tty, quietMs: Math.min(SPINNER_QUIET_MS, everyMs) });
    if (tty) guard = guardTerminal(stream, heartbeat);
    return heartbeat;
  };
  /** Runs the reporter's own writes (after them, the spinner may come back). */
  const own = <T>(f: () => T): T => (guard === null ? f() : guard.own(f));
  const write = (line: string) => {
    own(() => stream.write(`${line}\n`));
    if (guard === null) heartbeat?.printed(); // the guard has told it already
  };
  const writeStep = (s: Shown) => {
    write(plainStepLine(s));
    lastPrintedStep = s.step;
    lastPrintedAt = clock();
  };

  const ensureBar = (total: number, value: number) => {
    if (multi !== null) return;
    multi = new cliProgress.MultiBar({
      stream,
      format: "{bar} {value}/{total} | loss {ema} (last {last}) | lr {lr} | {tps} tok/s | ETA {etaStr}",
      barsize: 24,
      fps: 5,
      linewrap: true, // do not switch the terminal's wrapping off (it would stay off after a crash)
      hideCursor: false,
      clearOnComplete: false,
      stopOnComplete: false,
      forceRedraw: true,
    });
    // The bar redraws on a timer; unref it so that a run that dies without onEnd can still exit.
    const internals = multi as unknown as MultiBarInternals;
    const update = internals.update.bind(multi);
    internals.update = () => {
      own(update);
      internals.timer?.unref();
    };
    bar = multi.create(total, value, { ema: "-", last: "-", lr: "-", tps: "-", etaStr: "?" });
    internals.timer?.unref();
  };

  const logLine = (line: string) => {
    if (multi !== null) {
      multi.log(`${line}\n`);
      multi.update(); // own(), by the wrapper above
    } else {
      write(line);
    }
  };

  const finish = () => {
    heartbeat?.close(); // terminal: erases the spinner
    heartbeat = null;
    guard?.release();
    guard = null;
    if (multi !== null) {
      multi.update();
      multi.stop();
      multi = null;
      bar = null;
    } else if (!tty && lastShown !== null && lastShown.step !== lastPrintedStep) {
      writeStep(lastShown);
    }
  };

  return {
    onDataProgress: dataProgressHandler(stream, tty, everyMs, clock),

    onPhase(what, step) {
      if (what === null) {
        heartbeat?.idle();
        return;
      }
      // A step is shown by the bar or the step lines; a long build is announced on a line of its own.
      if (step === undefined && multi === null) write(`${what}...`);
      if (tty) {
        // The spinner takes the bar's line while a step blocks, so it says what the bar would.
        const total = start?.totalSteps;
        const text = step !== undefined && total !== undefined ? `step ${step}/${total}` : what;
        const detail = step !== undefined && lastShown !== null ? spinnerDetail(lastShown) : "";
        beat()?.phase(text, { detail, columns: stream.columns ?? 80 });
      } else {
        beat()?.phase(what);
      }
    },

    onStart(info) {
      start = info;
      t0 = clock();
      lastPrintedAt = t0;
      firstStep = info.startStep;
      if (every <= 0)
        every = Math.max(1, Math.ceil((info.totalSteps - info.startStep) / PLAIN_LINES_PER_RUN));
      if (tty) ensureBar(info.totalSteps, info.startStep);
    },

    onStep(m: StepMetrics) {
      const now = clock();
      if (t0 === null || firstStep === null) {
        // No onStart: time from this step on (its own duration is unknown).
        t0 = now;
        firstStep = m.step;
      }
      ema.push(m.loss);
      const total = start?.totalSteps ?? null;
      const done = m.step - firstStep;
      const secPerStep = done > 0 ? (now - t0) / 1000 / done : Number.NaN;
      const etaSec = total === null ? Number.NaN : Math.max(0, total - m.step) * secPerStep;
      const shown: Shown = {
        step: m.step,
        total,
        ema: ema.value,
        last: m.loss,
        lr: m.lr,
        tps: m.tokensPerSec,
        etaSec,
      };
      lastShown = shown;
      // The step is over: what runs until the next one (eval, a checkpoint) is not "step N".
      const erased = tty && heartbeat?.idle() === true;

      if (tty && total !== null) {
        ensureBar(total, start?.startStep ?? 0);
        bar?.update(m.step, {
          ema: fmtLoss(shown.ema),
          last: fmtLoss(shown.last),
          lr: fmtLr(shown.lr),
          tps: fmtRate(shown.tps),
          etaStr: formatDuration(etaSec),
        });
        // The bar comes back at once where the spinner was, not at its next redraw: the next step
        // may block the timer for as long again.
        if (erased || m.step >= total) multi?.update();
        return;
      }
      // Plain lines (also on a terminal when the total is unknown).
      if (every <= 0) every = 10;
      const isFirst = start !== null ? m.step === start.startStep + 1 : lastPrintedStep < 0;
      const isLast = total !== null && m.step >= total;
      if (isFirst || isLast || m.step % every === 0 || now - lastPrintedAt >= everyMs) writeStep(shown);
    },

    onEval(m) {
      logLine(evalLine(m));
    },

    onCheckpoint(dir, step, removed) {
      logLine(checkpointLine(dir, step, removed));
    },

    onEnd() {
      finish();
    },

    // The bar is closed and the last step shown, so that the interrupt line starts a line of its own.
    onInterrupt() {
      finish();
    },
  };
}
