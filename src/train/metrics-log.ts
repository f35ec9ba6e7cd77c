/**
 * metrics.jsonl: one JSON object per line, the StepMetrics and EvalMetrics the trainer emits, as they
 * are. Each record is one write() of a whole line, so a crash can tear at most the last line, which
 * readMetrics skips. On resume the file is first cut back to the records up to the resumed step.
 * runMetricsLog opens it only when the run starts, in the folder the trainer writes into.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { FileFormatError, LoraTsError } from "../util/errors.js";
import type { Metrics, TrainerEvents } from "./events.js";

export interface MetricsLog extends TrainerEvents {
  /** Closes the file (also done by onEnd). A later record reopens it for appending. */
  close(): void;
}

export interface MetricsLogOptions {
  /**
   * Continue a resumed run: keep the records with step <= resumeFromStep and append after them.
   * Without it the log starts empty.
   */
  resumeFromStep?: number;
}

function isMetrics(v: unknown): v is Metrics {
  if (typeof v !== "object" || v === null) return false;
  const o = v as { type?: unknown; step?: unknown };
  return (o.type === "train" || o.type === "eval") && typeof o.step === "number";
}

/**
 * Reads a metrics.jsonl. A torn last line (a run killed mid-write) is skipped; any other line that is
 * not a metrics record is an error naming the line.
 */
export function readMetrics(path: string): Metrics[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new LoraTsError(`${path}: cannot read (${(e as Error).message.split("\n")[0]})`);
  }
  const lines = text.split("\n");
  let lastLine = lines.length - 1;
  while (lastLine >= 0 && lines[lastLine]!.trim() === "") lastLine--;
  const out: Metrics[] = [];
  for (let i = 0; i <= lastLine; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    const last = i === lastLine;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      if (last) break;
      throw new FileFormatError(path, `line ${i + 1}: not valid JSON`);
    }
    if (!isMetrics(v)) {
      if (last) break;
      throw new FileFormatError(path, `line ${i + 1}: not a metrics record (needs "type" and "step")`);
    }
    out.push(v);
  }
  return out;
}

export function metricsLog(path: string, opts: MetricsLogOptions = {}): MetricsLog {
  mkdirSync(dirname(path), { recursive: true });
  if (opts.resumeFromStep !== undefined) {
    const keep = existsSync(path) ? readMetrics(path).filter((m) => m.step <= opts.resumeFromStep!) : [];
    writeFileAtomic(path, keep.map((m) => `${JSON.stringify(m)}\n`).join(""));
  } else {
    writeFileAtomic(path, "");
  }

  let fd: number | null = null;
  const append = (m: Metrics) => {
    if (fd === null) {
      try {
        fd = openSync(path, "a");
      } catch (e) {
        throw new LoraTsError(`${path}: cannot open for appending (${(e as Error).message.split("\n")[0]})`);
      }
    }
    writeSync(fd, `${JSON.stringify(m)}\n`);
  };
  const close = () => {
    if (fd !== null) {
      closeSync(fd);
      fd = null;
    }
  };

  return {
    onStep: append,
    onEval: append,
    onEnd: close,
    onInterrupt: close,
    close,
  };
}

/**
 * `DIR/metrics.jsonl` of a training run, as trainer events. Nothing is touched until onStart, which the
 * trainer emits only after it has checked every input, so a run that fails to start leaves the previous
 * log as it was. A fresh run (startStep 0) starts an empty log; a resumed one keeps the records up to
 * the step it resumes from and drops later ones. DIR is the folder the trainer reports in onStart
 * (a temporary folder while a `force` run replaces `outDir`), else `outDir`.
 */
export function runMetricsLog(outDir: string): MetricsLog {
  let log: MetricsLog | null = null;
  const current = (): MetricsLog => {
    if (log === null) throw new LoraTsError("metrics.jsonl: a record came before the run started");
    return log;
  };
  return {
    onStart(info) {
      log?.close();
      log = metricsLog(join(info.outDir ?? outDir, "metrics.jsonl"), {
        resumeFromStep: info.startStep > 0 ? info.startStep : undefined,
      });
    },
    onStep: (m) => current().onStep?.(m),
    onEval: (m) => current().onEval?.(m),
    onEnd: () => log?.close(),
    onInterrupt: () => log?.close(),
    close: () => log?.close(),
  };
}
