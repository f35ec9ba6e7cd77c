/** The end-of-run summary (parameters, time, losses, sizes) as label/value rows, for HTML and terminal. */
import type { TrainSummary } from "./events.js";
import { formatDuration } from "./progress.js";

function fmtInt(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Bytes in decimal units: B, KB (10^3), MB (10^6), GB (10^9). */
export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[i]}`;
}

function fmtPct(x: number): string {
  if (!Number.isFinite(x)) return "?";
  if (x !== 0 && Math.abs(x) < 0.01) return `${x.toPrecision(2)}%`;
  return `${x.toFixed(2)}%`;
}

function fmtNum(x: number | null, digits = 4): string {
  return x === null || !Number.isFinite(x) ? "—" : x.toFixed(digits);
}

/** The summary as label/value rows (the HTML table and the terminal lines show the same). */
export function summaryRows(s: TrainSummary): [string, string][] {
  const rows: [string, string][] = [];
  rows.push(["Mode", s.mode === "lora" ? "LoRA adapter" : "full fine-tuning"]);
  rows.push([
    "Trainable parameters",
    `${fmtInt(s.trainableParams)} of ${fmtInt(s.totalParams)} (${fmtPct((100 * s.trainableParams) / s.totalParams)})`,
  ]);
  rows.push(["Steps", fmtInt(s.steps)]);
  rows.push([
    "Time",
    `${formatDuration(s.seconds)}${s.steps > 0 ? ` (${(s.seconds / s.steps).toFixed(2)} s/step)` : ""}`,
  ]);
  rows.push(["Final train loss", fmtNum(s.finalTrainLoss)]);
  const a = s.firstEvalLoss;
  const b = s.finalEvalLoss;
  if (a !== null && b !== null) {
    const change = a !== 0 ? ` (${b <= a ? "−" : "+"}${fmtPct((100 * Math.abs(b - a)) / a)})` : "";
    rows.push(["Eval loss", `${fmtNum(a)} → ${fmtNum(b)}${change}`]);
    rows.push(["Eval perplexity", `${fmtNum(Math.exp(a), 2)} → ${fmtNum(Math.exp(b), 2)}`]);
  } else if (a !== null || b !== null) {
    // One evaluation only: say when, rather than an arrow from a dash.
    const only = (a ?? b)!;
    const when = a === null ? "at the end only" : "at the start only";
    rows.push(["Eval loss", `${fmtNum(only)} (${when})`]);
    rows.push(["Eval perplexity", `${fmtNum(Math.exp(only), 2)} (${when})`]);
  } else {
    rows.push(["Eval loss", "—"]);
  }
  const what = s.mode === "lora" ? "adapter" : "model";
  let ratio = "";
  if (s.baseBytes > 0 && s.savedBytes > 0) {
    const r = s.savedBytes / s.baseBytes;
    ratio =
      r < 1
        ? ` (${fmtPct(100 * r)} of base, ${(1 / r).toFixed(1)}× smaller)`
        : ` (${r.toFixed(2)}× the base)`;
  }
  rows.push([
    "Saved size",
    `${formatBytes(s.savedBytes)} ${what} vs ${formatBytes(s.baseBytes)} base${ratio}`,
  ]);
  rows.push(["Output", s.outDir]);
  return rows;
}

/** The summary for the terminal, one "label  value" line per row. */
export function reportSummaryLines(summary: TrainSummary, extra: [string, string][] = []): string[] {
  const rows = [...summaryRows(summary), ...extra];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w + 1)}  ${v}`);
}
