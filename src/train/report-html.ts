/** report.html: a self-contained page with the inline SVG loss chart and the summary table. */
import { writeFileAtomic } from "../util/atomic.js";
import { EMA_BETA } from "./chart.js";
import { svgChart } from "./chart-svg.js";
import type { Metrics, TrainSummary } from "./events.js";
import { escapeHtml as esc, htmlPage } from "./html-page.js";
import { summaryRows } from "./report-summary.js";

export function htmlReport(metrics: readonly Metrics[], summary: TrainSummary): string {
  const rows = summaryRows(summary)
    .map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td>${esc(v)}</td></tr>`)
    .join("\n");
  const title = `lora-ts training report — ${summary.mode === "lora" ? "LoRA" : "full"}, ${summary.steps} steps`;
  return htmlPage({
    title,
    maxWidth: 860,
    body: `<h1>Training report</h1>
<p class="sub">${esc(summary.outDir)}</p>
<figure>
${svgChart(metrics)}
<figcaption>Train loss per step (faint: raw, solid: exponential moving average, β = ${EMA_BETA}) and validation loss.</figcaption>
</figure>
<h2>Summary</h2>
<table>
${rows}
</table>`,
  });
}

export function writeHtmlReport(path: string, metrics: readonly Metrics[], summary: TrainSummary): void {
  writeFileAtomic(path, htmlReport(metrics, summary));
}
