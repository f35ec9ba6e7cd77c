/**
 * The end-of-run report as trainer events: collects the metrics and, at the end, writes report.html and
 * loss.png into the output folder and prints the terminal chart and the summary.
 *
 * chart.ts: the chart model · chart-svg.ts: the SVG chart · chart-png.ts: the SVG rendered to PNG ·
 * report-html.ts: the HTML page · report-summary.ts: the summary rows · terminal-chart.ts: braille chart.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { writePngChart } from "./chart-png.js";
import type { Metrics, TrainerEvents } from "./events.js";
import { readMetrics } from "./metrics-log.js";
import { writeHtmlReport } from "./report-html.js";
import { reportSummaryLines } from "./report-summary.js";
import { terminalChart } from "./terminal-chart.js";

export interface ReportOptions {
  /**
   * metrics.jsonl of the run (default outDir/metrics.jsonl; null: none). When it exists at the end, its
   * records from before the first step this reporter saw (the history before a resume) are added.
   */
  metricsPath?: string | null;
  /** Where the terminal chart and summary go (default process.stdout). */
  stream?: NodeJS.WritableStream;
  /** Print the terminal chart (default true). */
  terminal?: boolean;
}

function withHistory(file: readonly Metrics[], seen: readonly Metrics[]): Metrics[] {
  const firstSeen = seen.length > 0 ? Math.min(...seen.map((m) => m.step)) : Number.POSITIVE_INFINITY;
  const before = file.filter((m) => m.step < firstSeen);
  return [...before, ...seen];
}

/** Collects the metrics and, at the end of the run, writes report.html and loss.png into outDir and prints a text chart and the summary. */
export function reportEvents(outDir: string, opts: ReportOptions = {}): TrainerEvents {
  const seen: Metrics[] = [];
  return {
    onStep(m) {
      seen.push(m);
    },
    onEval(m) {
      seen.push(m);
    },
    onEnd(summary) {
      let metrics: Metrics[] = seen;
      const history = opts.metricsPath === undefined ? join(outDir, "metrics.jsonl") : opts.metricsPath;
      if (history !== null && existsSync(history)) {
        try {
          metrics = withHistory(readMetrics(history), seen);
        } catch {
          metrics = seen; // an unreadable log must not cost the report
        }
      }
      mkdirSync(outDir, { recursive: true });
      const html = join(outDir, "report.html");
      const png = join(outDir, "loss.png");
      writeHtmlReport(html, metrics, summary);
      writePngChart(png, metrics);
      const out = opts.stream ?? process.stdout;
      const lines: string[] = [];
      if (opts.terminal !== false && metrics.length > 0) lines.push("", terminalChart(metrics), "");
      lines.push(
        ...reportSummaryLines(summary, [
          ["Report", html],
          ["Loss chart", png],
        ]),
      );
      out.write(`${lines.join("\n")}\n`);
    },
  };
}
