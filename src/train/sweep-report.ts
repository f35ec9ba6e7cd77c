/**
 * OUT/report.html of a sweep: self-contained (inline SVG and CSS, no script, no network). The paper's
 * table (target sets as columns, r as rows, validation loss mean ± std over seeds, the best cell
 * marked), validation loss against r (log axis) per target set, loss against trainable parameters,
 * and every run's loss curve. The charts are chart-svg.ts's, as in the training report.
 */
import { writeFileAtomic } from "../util/atomic.js";
import { type Series, svgChart, svgSeriesChart } from "./chart-svg.js";
import type { Metrics } from "./events.js";
import { escapeHtml as esc, htmlPage } from "./html-page.js";
import { paperTable, type ResultRow, rowCellText, tableRows } from "./sweep-results.js";

function num(v: number | null, digits = 4): string {
  return v === null || !Number.isFinite(v) ? "—" : v.toFixed(digits);
}

function tableHtml(rows: readonly ResultRow[], budget?: number): string {
  const t = paperTable(rows);
  const head = `<tr><th scope="col"></th>${t.targets.map((x) => `<th scope="col">${esc(x)}</th>`).join("")}</tr>`;
  const body = tableRows(t, budget)
    .map((row) => {
      const cells = row.cells.map((c) => {
        const best = c !== undefined && c === t.best;
        const title = c?.trainable != null ? ` title="${c.trainable} trainable parameters"` : "";
        return `<td${best ? ' class="best"' : ""}${title}>${esc(rowCellText(row, c))}${best ? " ★" : ""}</td>`;
      });
      return `<tr><th scope="row">${esc(row.label)}</th>${cells.join("")}</tr>`;
    })
    .join("\n");
  return `<table id="paper-table" class="paper">\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/** Per target set, (x, mean validation loss) over its cells, x from `xOf`. */
function seriesBy(
  rows: readonly ResultRow[],
  xOf: (r: number, trainable: number | null) => number | null,
): Series[] {
  const t = paperTable(rows);
  return t.targets.map((tg) => ({
    label: tg,
    points: t.ranks
      .map((r) => t.cell(tg, r))
      .filter((c) => c !== undefined && c.mean !== null)
      .map((c) => ({ x: xOf(c!.r, c!.trainable) ?? Number.NaN, y: c!.mean! }))
      .sort((a, b) => a.x - b.x),
  }));
}

function runsTable(rows: readonly ResultRow[]): string {
  const cols = [
    "run",
    "targets",
    "r",
    "alpha",
    "seed",
    "trainable",
    "train loss",
    "best val",
    "final val",
    "final ppl",
    "tok/s",
    "s",
    "status",
  ];
  const body = rows
    .map((r) => {
      const status = r.status === "failed" ? `failed: ${r.error ?? ""}` : r.status;
      const cells = [
        r.name,
        r.targets,
        String(r.r),
        r.alpha === null ? "—" : String(r.alpha),
        String(r.seed),
        r.trainable_params === null ? "—" : String(r.trainable_params),
        num(r.final_train_loss),
        num(r.best_val_loss),
        num(r.final_val_loss),
        num(r.final_val_perplexity, 3),
        num(r.tokens_per_sec, 0),
        num(r.seconds, 1),
        status,
      ];
      return `<tr${r.status === "failed" ? ' class="failed"' : ""}>${cells.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`;
    })
    .join("\n");
  return `<table id="runs" class="runs">\n<thead><tr>${cols.map((c) => `<th scope="col">${c}</th>`).join("")}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

export function sweepReportHtml(
  rows: readonly ResultRow[],
  curves: ReadonlyMap<string, readonly Metrics[]>,
  info: { title: string; note?: string; budget?: number },
): string {
  const byR = svgSeriesChart(
    seriesBy(rows, (r) => r),
    {
      xLabel: "r",
      yLabel: "validation loss",
      logX: true,
      title: "Validation loss against r, one line per target set",
    },
  );
  const byParams = svgSeriesChart(
    seriesBy(rows, (_r, n) => n),
    {
      xLabel: "trainable parameters",
      yLabel: "validation loss",
      logX: true,
      title: "Validation loss against trainable parameters, one line per target set",
    },
  );
  const runCharts = rows
    .map((r) => {
      const m = curves.get(r.name) ?? [];
      return `<figure class="run">\n${svgChart(m, { width: 420, height: 240 })}\n<figcaption>${esc(r.name)} (${esc(r.status)})</figcaption>\n</figure>`;
    })
    .join("\n");
  return htmlPage({
    title: info.title,
    maxWidth: 1000,
    css: `table { border-collapse: collapse; margin: 1rem 0; }
th, td { text-align: right; padding: 0.3rem 0.8rem; border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }
td.best { background: #e8f5e9; font-weight: 700; }
tr.failed td { color: #b00; }
.runs td, .runs th { font-size: 0.85rem; }
.grid { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.grid figure { margin: 0.5rem 0; flex: 0 1 420px; }`,
    body: `<h1>${esc(info.title)}</h1>
${info.note ? `<p class="sub">${esc(info.note)}</p>` : ""}
<h2>Validation loss by target set and r</h2>
<p>Final validation loss, mean ± standard deviation over seeds; ★ marks the lowest mean.</p>
${tableHtml(rows, info.budget)}
<h2>Validation loss against r</h2>
<figure id="chart-r">
${byR}
</figure>
<h2>Validation loss against trainable parameters</h2>
<figure id="chart-params">
${byParams}
</figure>
<h2>Runs</h2>
${runsTable(rows)}
<h2>Loss curves</h2>
<div class="grid" id="curves">
${runCharts}
</div>`,
  });
}

export function writeSweepReport(
  path: string,
  rows: readonly ResultRow[],
  curves: ReadonlyMap<string, readonly Metrics[]>,
  info: { title: string; note?: string; budget?: number },
): void {
  writeFileAtomic(path, sweepReportHtml(rows, curves, info));
}
