/** report.html: a self-contained page with the inline SVG loss chart and the summary table. */
import { writeFileAtomic } from "../util/atomic.js";
import { EMA_BETA } from "./chart.js";
import { svgChart } from "./chart-svg.js";
import type { Metrics, TrainSummary } from "./events.js";
import { summaryRows } from "./report-summary.js";

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function htmlReport(metrics: readonly Metrics[], summary: TrainSummary): string {
  const rows = summaryRows(summary)
    .map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td>${esc(v)}</td></tr>`)
    .join("\n");
  const title = `lora-ts training report — ${summary.mode === "lora" ? "LoRA" : "full"}, ${summary.steps} steps`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 2rem auto; max-width: 860px; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin-bottom: 0.2rem; }
.sub { color: #666; margin-top: 0; }
figure { margin: 1.5rem 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.3rem 1.2rem 0.3rem 0; border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }
th { font-weight: 600; color: #444; }
</style>
</head>
<body>
<h1>Training report</h1>
<p class="sub">${esc(summary.outDir)}</p>
<figure>
${svgChart(metrics)}
<figcaption>Train loss per step (faint: raw, solid: exponential moving average, β = ${EMA_BETA}) and validation loss.</figcaption>
</figure>
<h2>Summary</h2>
<table>
${rows}
</table>
</body>
</html>
`;
}

export function writeHtmlReport(path: string, metrics: readonly Metrics[], summary: TrainSummary): void {
  writeFileAtomic(path, htmlReport(metrics, summary));
}
