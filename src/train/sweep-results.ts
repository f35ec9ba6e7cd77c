/**
 * A sweep's results: one row per run, read from the run's own files (metrics.jsonl, adapter_config.json)
 * and its outcome; OUT/results.json and OUT/results.csv (written atomically); and the paper's table,
 * validation loss as mean ± std over seeds per (target set, r).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "../util/atomic.js";
import { evalRecords, trainRecords } from "./chart.js";
import type { Metrics } from "./events.js";
import { readMetrics } from "./metrics-log.js";
import type { RunSpec } from "./sweep-plan.js";
import type { RunOutcome } from "./sweep-runner.js";

export interface ResultRow {
  name: string;
  targets: string;
  r: number;
  alpha: number | null;
  seed: number;
  trainable_params: number | null;
  final_train_loss: number | null;
  best_val_loss: number | null;
  best_val_perplexity: number | null;
  final_val_loss: number | null;
  final_val_perplexity: number | null;
  tokens_per_sec: number | null;
  seconds: number | null;
  /**
   * "done" (trained by this invocation), "skipped" (finished before, reused), "failed", or, when the
   * sweep was stopped by a signal, "interrupted" / "not run".
   */
  status: string;
  error: string | null;
}

export const CSV_COLUMNS: readonly (keyof ResultRow)[] = [
  "name",
  "targets",
  "r",
  "alpha",
  "seed",
  "trainable_params",
  "final_train_loss",
  "best_val_loss",
  "best_val_perplexity",
  "final_val_loss",
  "final_val_perplexity",
  "tokens_per_sec",
  "seconds",
  "status",
  "error",
];

/** The run's metrics, [] when it has none (a run that failed before its first step). */
export function runMetrics(dir: string): Metrics[] {
  const p = join(dir, "metrics.jsonl");
  if (!existsSync(p)) return [];
  try {
    return readMetrics(p);
  } catch {
    return [];
  }
}

function alphaOf(dir: string): number | null {
  try {
    const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as {
      lora_alpha?: unknown;
    };
    return typeof cfg.lora_alpha === "number" ? cfg.lora_alpha : null;
  } catch {
    return null;
  }
}

/** A row from the run's plan, outcome and files. A failed run keeps what its folder has, if anything. */
export function resultRow(spec: RunSpec, outcome: RunOutcome, dir: string): ResultRow {
  const failed = outcome.status === "failed";
  const finished = outcome.status === "done" || outcome.status === "skipped";
  const metrics = finished ? runMetrics(dir) : [];
  const train = trainRecords(metrics);
  const evals = evalRecords(metrics);
  const best = evals.reduce<(typeof evals)[number] | null>(
    (b, e) => (b === null || e.loss < b.loss ? e : b),
    null,
  );
  const last = evals[evals.length - 1] ?? null;
  const lastTrain = train[train.length - 1] ?? null;
  return {
    name: spec.name,
    targets: spec.targets.label,
    r: spec.r,
    alpha: finished ? alphaOf(dir) : null,
    seed: spec.seed,
    trainable_params: spec.trainable,
    final_train_loss: lastTrain?.loss ?? null,
    best_val_loss: best?.loss ?? null,
    best_val_perplexity: best?.perplexity ?? null,
    final_val_loss: last?.loss ?? null,
    final_val_perplexity: last?.perplexity ?? null,
    tokens_per_sec: lastTrain?.tokensPerSec ?? null,
    seconds: outcome.seconds,
    status: outcome.status,
    error: outcome.error ?? (spec.note && failed ? spec.note : null),
  };
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return "";
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function resultsCsv(rows: readonly ResultRow[]): string {
  const lines = [CSV_COLUMNS.join(","), ...rows.map((r) => CSV_COLUMNS.map((c) => csvCell(r[c])).join(","))];
  return `${lines.join("\n")}\n`;
}

export function writeResults(out: string, rows: readonly ResultRow[]): { json: string; csv: string } {
  const json = join(out, "results.json");
  const csv = join(out, "results.csv");
  writeJsonAtomic(json, rows);
  writeFileAtomic(csv, resultsCsv(rows));
  return { json, csv };
}

/** A cell of the paper's table: the validation loss over the seeds that finished. */
export interface Cell {
  targets: string;
  r: number;
  /** Mean and sample standard deviation (n-1; 0 for one seed) of the final validation loss. */
  mean: number | null;
  std: number | null;
  /** Seeds with a validation loss, runs in the cell, and how many of them failed. */
  n: number;
  runs: number;
  failed: number;
  trainable: number | null;
}

/** The validation loss used in the table: the final one (the paper reports the end of training). */
export function cellValue(row: ResultRow): number | null {
  return row.status === "done" || row.status === "skipped" ? row.final_val_loss : null;
}

/** Cells by target set (columns, in given order) and r (rows, ascending); plus the best cell's key. */
export function paperTable(rows: readonly ResultRow[]): {
  targets: string[];
  ranks: number[];
  cell(targets: string, r: number): Cell | undefined;
  best: Cell | null;
} {
  const targets = [...new Set(rows.map((r) => r.targets))];
  const ranks = [...new Set(rows.map((r) => r.r))].sort((a, b) => a - b);
  const cells = new Map<string, Cell>();
  for (const t of targets) {
    for (const r of ranks) {
      const group = rows.filter((x) => x.targets === t && x.r === r);
      if (group.length === 0) continue;
      const vals = group.map(cellValue).filter((v): v is number => v !== null && Number.isFinite(v));
      const n = vals.length;
      const mean = n > 0 ? vals.reduce((a, b) => a + b, 0) / n : null;
      const std =
        n > 1 ? Math.sqrt(vals.reduce((a, v) => a + (v - mean!) ** 2, 0) / (n - 1)) : n === 1 ? 0 : null;
      cells.set(`${t}\u0000${r}`, {
        targets: t,
        r,
        mean,
        std,
        n,
        runs: group.length,
        failed: group.filter((x) => x.status === "failed").length,
        trainable: group[0]!.trainable_params,
      });
    }
  }
  let best: Cell | null = null;
  for (const c of cells.values()) if (c.mean !== null && (best === null || c.mean < best.mean!)) best = c;
  return { targets, ranks, cell: (t, r) => cells.get(`${t}\u0000${r}`), best };
}

/** "1.234 ± 0.012" (or "1.234" for one seed, "failed" / "—" when the cell has no value). */
export function cellText(c: Cell | undefined): string {
  if (c === undefined) return "";
  if (c.mean === null) return c.failed > 0 && c.failed === c.runs ? "failed" : "—";
  const m = c.mean.toFixed(3);
  const partial = c.n < c.runs ? ` (${c.n}/${c.runs})` : "";
  return c.n > 1 ? `${m} ± ${c.std!.toFixed(3)}${partial}` : `${m}${partial}`;
}

export interface TableRow {
  label: string;
  cells: (Cell | undefined)[];
  /** Budget mode: the cells are at different r, which their text names. */
  showR: boolean;
}

/**
 * The rows of the paper's table: one per r (Table 6), or, with a budget, one row in which each target
 * set sits at its own r (Table 5).
 */
export function tableRows(t: ReturnType<typeof paperTable>, budget?: number): TableRow[] {
  if (budget !== undefined)
    return [
      {
        label: `budget ${budget}`,
        cells: t.targets.map((tg) => t.ranks.map((r) => t.cell(tg, r)).find((c) => c !== undefined)),
        showR: true,
      },
    ];
  return t.ranks.map((r) => ({ label: `r=${r}`, cells: t.targets.map((tg) => t.cell(tg, r)), showR: false }));
}

/** A cell's text in a row: with "r=R: " in front when the row's cells are at different r. */
export function rowCellText(row: TableRow, c: Cell | undefined): string {
  return row.showR && c !== undefined ? `r=${c.r}: ${cellText(c)}` : cellText(c);
}
