/**
 * metrics.jsonl: one JSON object per line, the StepMetrics and EvalMetrics the trainer emits, as they
 * are, after one DataRecord per data set (`{"type":"data","role":"train",...}`: rows read, kept,
 * truncated and dropped, and why). readMetrics returns the step and eval records (what charts and
 * reports read); readMetricsRecords the data records too. Each record is one write() of a whole line, so a crash can tear at most the last line, which
 * readMetrics skips. On resume the file is first cut back to the records up to the resumed step.
 * runMetricsLog opens it only when the run starts, in the folder the trainer writes into.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { DataSummary } from "../data/examples.js";
import { rowAccounting } from "../data/prepared.js";
import { writeFileAtomic } from "../util/atomic.js";
import { FileFormatError, LoraTsError } from "../util/errors.js";
import type { DataPreparation, DataRecord, Metrics, TrainerEvents } from "./events.js";

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
  /** Data records to write first (a resumed log's older data records are replaced by these). */
  data?: readonly DataRecord[];
}

/** metrics.jsonl's record of a data set (see DataRecord). */
export function dataRecord(
  summary: DataSummary,
  role: "train" | "val",
  preparation?: DataPreparation,
): DataRecord {
  return {
    type: "data",
    role,
    ...(summary.path !== undefined ? { path: summary.path } : {}),
    rows: rowAccounting(summary),
    examples: summary.examples,
    trainedTokens: summary.trainedTokens,
    maxLength: summary.maxLength,
    ...preparation,
  };
}

function isDataRecord(v: unknown): v is DataRecord {
  if (typeof v !== "object" || v === null) return false;
  const o = v as { type?: unknown; role?: unknown; rows?: unknown };
  return o.type === "data" && (o.role === "train" || o.role === "val") && typeof o.rows === "object";
}

function isMetrics(v: unknown): v is Metrics {
  if (typeof v !== "object" || v === null) return false;
  const o = v as { type?: unknown; step?: unknown };
  return (o.type === "train" || o.type === "eval") && typeof o.step === "number";
}

/** Reads a metrics.jsonl's step and eval records (see readMetricsRecords). */
export function readMetrics(path: string): Metrics[] {
  return readMetricsRecords(path).filter((r): r is Metrics => r.type !== "data");
}

/**
 * Reads a metrics.jsonl, data records included. A torn last line (a run killed mid-write) is skipped;
 * any other line that is not a record is an error naming the line.
 */
export function readMetricsRecords(path: string): (Metrics | DataRecord)[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new LoraTsError(`${path}: cannot read (${(e as Error).message.split("\n")[0]})`);
  }
  const lines = text.split("\n");
  let lastLine = lines.length - 1;
  while (lastLine >= 0 && lines[lastLine]!.trim() === "") lastLine--;
  const out: (Metrics | DataRecord)[] = [];
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
    if (!isMetrics(v) && !isDataRecord(v)) {
      if (last) break;
      throw new FileFormatError(
        path,
        `line ${i + 1}: not a metrics record (needs "type" and "step", or "type": "data" and "role")`,
      );
    }
    out.push(v);
  }
  return out;
}

export function metricsLog(path: string, opts: MetricsLogOptions = {}): MetricsLog {
  mkdirSync(dirname(path), { recursive: true });
  const data = (opts.data ?? []).map((r) => `${JSON.stringify(r)}\n`).join("");
  if (opts.resumeFromStep !== undefined) {
    const keep = existsSync(path) ? readMetrics(path).filter((m) => m.step <= opts.resumeFromStep!) : [];
    writeFileAtomic(path, data + keep.map((m) => `${JSON.stringify(m)}\n`).join(""));
  } else {
    writeFileAtomic(path, data);
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
 * (a temporary folder while a `force` run replaces `outDir`), else `outDir`. The data records (onData,
 * which comes before onStart) are kept until then and written first.
 */
export function runMetricsLog(outDir: string): MetricsLog {
  let log: MetricsLog | null = null;
  const data: DataRecord[] = [];
  const current = (): MetricsLog => {
    if (log === null) throw new LoraTsError("metrics.jsonl: a record came before the run started");
    return log;
  };
  return {
    onData(summary, role, preparation) {
      data.push(dataRecord(summary, role, preparation));
    },
    onStart(info) {
      log?.close();
      log = metricsLog(join(info.outDir ?? outDir, "metrics.jsonl"), {
        resumeFromStep: info.startStep > 0 ? info.startStep : undefined,
        data,
      });
    },
    onStep: (m) => current().onStep?.(m),
    onEval: (m) => current().onEval?.(m),
    onEnd: () => log?.close(),
    onInterrupt: () => log?.close(),
    close: () => log?.close(),
  };
}
