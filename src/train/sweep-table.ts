/**
 * The sweep's terminal tables: the plan (targets, r, trainable) printed before the runs, and the
 * summary after them, laid out as the LoRA paper's Tables 5/6 (target sets as columns, r as rows,
 * validation loss as mean ± std over seeds, the best cell marked with *).
 */
import type { RunSpec } from "./sweep-plan.js";
import { paperTable, type ResultRow, rowCellText, tableRows } from "./sweep-results.js";

/** Columns padded to their widest cell; the first left-aligned, the rest right-aligned. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((s, c) => (c === 0 ? s.padEnd(widths[c]!) : s.padStart(widths[c]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** One row per (target set, r) of the plan, with its trainable count. */
export function planTable(runs: readonly RunSpec[]): string {
  const seen = new Set<string>();
  const rows: string[][] = [];
  for (const run of runs) {
    const key = `${run.targets.label}\u0000${run.r}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const seeds = runs.filter((x) => x.targets.label === run.targets.label && x.r === run.r).length;
    rows.push([
      run.targets.label,
      String(run.r),
      run.trainable === null ? "— (selects no module)" : String(run.trainable),
      String(seeds),
    ]);
  }
  return textTable(["targets", "r", "trainable", "seeds"], rows);
}

/** The paper's layout: final validation loss, mean ± std over seeds; "*" marks the lowest mean. With a budget, one row. */
export function summaryTable(rows: readonly ResultRow[], budget?: number): string {
  const t = paperTable(rows);
  const body = tableRows(t, budget).map((row) => [
    row.label,
    ...row.cells.map((c) => `${rowCellText(row, c)}${c !== undefined && c === t.best ? " *" : ""}`),
  ]);
  const failed = rows.filter((r) => r.status === "failed").length;
  const lines = [
    "validation loss (final, mean ± std over seeds; * = lowest)",
    textTable(["", ...t.targets], body),
  ];
  if (failed > 0) lines.push(`${failed} of ${rows.length} runs failed (see results.json / logs/)`);
  return lines.join("\n");
}
