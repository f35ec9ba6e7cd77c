/**
 * The end-of-run report: an HTML page with an inline SVG loss chart and a summary table, the same chart
 * as a PNG (rasterised and encoded here, no image library), and a text chart plus summary lines for the
 * terminal. Everything is computed from the metrics records and the TrainSummary the trainer emits.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { writeFileAtomic } from "../util/atomic.js";
import type { EvalMetrics, Metrics, StepMetrics, TrainerEvents, TrainSummary } from "./events.js";
import { readMetrics } from "./metrics-log.js";
import { formatDuration } from "./progress.js";

// ---------------------------------------------------------------------------------------------------
// Chart model (shared by SVG, PNG and terminal)

export type Rgb = readonly [number, number, number];

/** Colours of the chart: raw train loss is TRAIN drawn faint, the smoothed line TRAIN at full strength. */
export const CHART_COLORS = {
  train: [31, 119, 180] as Rgb,
  eval: [228, 87, 46] as Rgb,
  axis: [51, 51, 51] as Rgb,
  grid: [229, 229, 229] as Rgb,
  text: [51, 51, 51] as Rgb,
  background: [255, 255, 255] as Rgb,
};
const RAW_ALPHA = 0.3;
export const EMA_BETA = 0.9;

interface Pt {
  x: number;
  y: number;
}

interface Axis {
  lo: number;
  hi: number;
  step: number;
  ticks: number[];
}

interface ChartModel {
  train: Pt[];
  smooth: Pt[];
  evals: Pt[];
  x: Axis;
  y: Axis;
}

/** Bias-corrected exponential moving average (non-finite values are skipped, keeping the previous value). */
export function smoothEma(values: readonly number[], beta = EMA_BETA): number[] {
  let m = 0;
  let n = 0;
  return values.map((v) => {
    if (Number.isFinite(v)) {
      n++;
      m = beta * m + (1 - beta) * v;
    }
    return n === 0 ? Number.NaN : m / (1 - beta ** n);
  });
}

/** Round axis bounds and ticks at 1, 2 or 5 × 10^k, about `target` intervals. */
export function niceTicks(min: number, max: number, target = 5, integer = false): Axis {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    min = 0;
    max = 1;
  }
  if (max <= min) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  const rough = (max - min) / target;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const norm = rough / mag;
  let step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  const n = Math.round((hi - lo) / step);
  for (let i = 0; i <= n; i++) ticks.push(Number((lo + i * step).toPrecision(12)));
  return { lo, hi, step, ticks };
}

function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
  return v.toFixed(Math.min(decimals, 10));
}

function trainRecords(metrics: readonly Metrics[]): StepMetrics[] {
  return metrics.filter((m): m is StepMetrics => m.type === "train" && Number.isFinite(m.loss));
}

function evalRecords(metrics: readonly Metrics[]): EvalMetrics[] {
  return metrics.filter((m): m is EvalMetrics => m.type === "eval" && Number.isFinite(m.loss));
}

function chartModel(metrics: readonly Metrics[]): ChartModel {
  const tr = trainRecords(metrics);
  const ev = evalRecords(metrics);
  const train = tr.map((m) => ({ x: m.step, y: m.loss }));
  const sm = smoothEma(tr.map((m) => m.loss));
  const smooth = train.map((p, i) => ({ x: p.x, y: sm[i]! }));
  const evals = ev.map((m) => ({ x: m.step, y: m.loss }));
  const all = [...train, ...evals];
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const xMin = xs.length ? Math.min(...xs) : 0;
  const xMax = xs.length ? Math.max(...xs) : 1;
  const yMin = ys.length ? Math.min(...ys) : 0;
  const yMax = ys.length ? Math.max(...ys) : 1;
  return {
    train,
    smooth,
    evals,
    x: niceTicks(xMin, xMax === xMin ? xMin + 1 : xMax, 8, true),
    y: niceTicks(yMin, yMax, 5),
  };
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  sx(x: number): number;
  sy(y: number): number;
}

function frame(model: ChartModel, width: number, height: number, left: number): Frame {
  const top = 34;
  const right = width - 20;
  const bottom = height - 44;
  const { x, y } = model;
  return {
    width,
    height,
    left,
    right,
    top,
    bottom,
    sx: (v) => left + ((v - x.lo) / (x.hi - x.lo)) * (right - left),
    sy: (v) => bottom - ((v - y.lo) / (y.hi - y.lo)) * (bottom - top),
  };
}

// ---------------------------------------------------------------------------------------------------
// SVG and HTML

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function hex(c: Rgb): string {
  return `#${c.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

function pathD(points: readonly Pt[], f: Frame): string {
  return points
    .map((p, i) => `${i === 0 ? "M" : "L"}${f.sx(p.x).toFixed(2)},${f.sy(p.y).toFixed(2)}`)
    .join(" ");
}

/** The loss chart as a standalone SVG element. */
export function svgChart(
  metrics: readonly Metrics[],
  opts: { width?: number; height?: number } = {},
): string {
  const width = opts.width ?? 800;
  const height = opts.height ?? 400;
  const model = chartModel(metrics);
  const f = frame(model, width, height, 64);
  const c = CHART_COLORS;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Loss per step" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`,
  );
  o.push(`<rect width="${width}" height="${height}" fill="${hex(c.background)}"/>`);
  // grid, ticks, labels
  o.push(`<g class="grid" stroke="${hex(c.grid)}" stroke-width="1">`);
  for (const t of model.y.ticks) {
    const y = f.sy(t).toFixed(1);
    o.push(`<line x1="${f.left}" y1="${y}" x2="${f.right}" y2="${y}"/>`);
  }
  for (const t of model.x.ticks) {
    const x = f.sx(t).toFixed(1);
    o.push(`<line x1="${x}" y1="${f.top}" x2="${x}" y2="${f.bottom}"/>`);
  }
  o.push("</g>");
  o.push(`<g class="axes" stroke="${hex(c.axis)}" stroke-width="1">`);
  o.push(`<line x1="${f.left}" y1="${f.bottom}" x2="${f.right}" y2="${f.bottom}"/>`);
  o.push(`<line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.bottom}"/>`);
  for (const t of model.y.ticks) {
    const y = f.sy(t).toFixed(1);
    o.push(`<line x1="${f.left - 5}" y1="${y}" x2="${f.left}" y2="${y}"/>`);
  }
  for (const t of model.x.ticks) {
    const x = f.sx(t).toFixed(1);
    o.push(`<line x1="${x}" y1="${f.bottom}" x2="${x}" y2="${f.bottom + 5}"/>`);
  }
  o.push("</g>");
  o.push(`<g class="tick-labels" fill="${hex(c.text)}">`);
  for (const t of model.y.ticks) {
    o.push(
      `<text x="${f.left - 8}" y="${(f.sy(t) + 4).toFixed(1)}" text-anchor="end">${tickLabel(t, model.y.step)}</text>`,
    );
  }
  for (const t of model.x.ticks) {
    o.push(
      `<text x="${f.sx(t).toFixed(1)}" y="${f.bottom + 19}" text-anchor="middle">${tickLabel(t, model.x.step)}</text>`,
    );
  }
  o.push(
    `<text x="${(f.left + f.right) / 2}" y="${height - 8}" text-anchor="middle" font-size="13">step</text>`,
  );
  o.push(
    `<text transform="translate(16 ${(f.top + f.bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="13">loss</text>`,
  );
  o.push("</g>");
  // data
  if (model.train.length > 0) {
    o.push(
      `<path class="train-raw" d="${pathD(model.train, f)}" fill="none" stroke="${hex(c.train)}" stroke-opacity="${RAW_ALPHA}" stroke-width="1" stroke-linejoin="round"/>`,
    );
    o.push(
      `<path class="train-ema" d="${pathD(model.smooth, f)}" fill="none" stroke="${hex(c.train)}" stroke-width="2" stroke-linejoin="round"/>`,
    );
  }
  if (model.evals.length > 0) {
    o.push(
      `<path class="eval" d="${pathD(model.evals, f)}" fill="none" stroke="${hex(c.eval)}" stroke-width="2" stroke-linejoin="round"/>`,
    );
    o.push(`<g class="eval-points" fill="${hex(c.eval)}">`);
    for (const p of model.evals) {
      o.push(
        `<circle cx="${f.sx(p.x).toFixed(2)}" cy="${f.sy(p.y).toFixed(2)}" r="3.5"><title>eval @ step ${p.x}: ${p.y.toFixed(4)}</title></circle>`,
      );
    }
    o.push("</g>");
  }
  if (model.train.length === 0 && model.evals.length === 0) {
    o.push(
      `<text x="${(f.left + f.right) / 2}" y="${(f.top + f.bottom) / 2}" text-anchor="middle" fill="#888">no metrics</text>`,
    );
  }
  // legend (above the plot, right-aligned)
  const items: [string, string][] = [
    [
      `<line x1="0" y1="0" x2="22" y2="0" stroke="${hex(c.train)}" stroke-opacity="${RAW_ALPHA}" stroke-width="1"/>`,
      "train loss",
    ],
    [`<line x1="0" y1="0" x2="22" y2="0" stroke="${hex(c.train)}" stroke-width="2"/>`, "smoothed (EMA)"],
    [
      `<line x1="0" y1="0" x2="22" y2="0" stroke="${hex(c.eval)}" stroke-width="2"/><circle cx="11" cy="0" r="3.5" fill="${hex(c.eval)}"/>`,
      "eval loss",
    ],
  ];
  const itemW = [100, 130, 90];
  let lx = f.right - itemW.reduce((a, b) => a + b, 0);
  o.push(`<g class="legend" fill="${hex(c.text)}">`);
  items.forEach(([sym, label], i) => {
    o.push(`<g transform="translate(${lx} 16)">${sym}<text x="28" y="4">${label}</text></g>`);
    lx += itemW[i]!;
  });
  o.push("</g>");
  o.push("</svg>");
  return o.join("\n");
}

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
  if (s.firstEvalLoss !== null || s.finalEvalLoss !== null) {
    const a = s.firstEvalLoss;
    const b = s.finalEvalLoss;
    const change =
      a !== null && b !== null && a !== 0
        ? ` (${b <= a ? "−" : "+"}${fmtPct((100 * Math.abs(b - a)) / a)})`
        : "";
    rows.push(["Eval loss", `${fmtNum(a)} → ${fmtNum(b)}${change}`]);
    const ppl = (x: number | null) => (x === null ? null : Math.exp(x));
    rows.push(["Eval perplexity", `${fmtNum(ppl(a), 2)} → ${fmtNum(ppl(b), 2)}`]);
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

// ---------------------------------------------------------------------------------------------------
// Raster chart and PNG

/** 5×7 bitmap glyphs, seven rows of five columns ('#' set). Characters not listed are drawn as blanks. */
const FONT: Record<string, readonly string[]> = {
  "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
  "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
  "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
  "3": ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
  "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
  "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
  "6": ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
  "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
  "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
  "9": [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
  ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
  "-": [".....", ".....", ".....", ".###.", ".....", ".....", "....."],
  "+": [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."],
  ":": [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."],
  "(": ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."],
  ")": [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."],
  a: [".....", ".....", ".###.", "....#", ".####", "#...#", ".####"],
  d: ["....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"],
  e: [".....", ".....", ".###.", "#...#", "#####", "#....", ".###."],
  h: ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"],
  i: ["..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."],
  l: [".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
  m: [".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"],
  n: [".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"],
  o: [".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."],
  p: [".....", ".....", "####.", "#...#", "####.", "#....", "#...."],
  r: [".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."],
  s: [".....", ".....", ".####", "#....", ".###.", "....#", "####."],
  t: [".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."],
  v: [".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
  A: [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
  E: ["#####", "#....", "#....", "####.", "#....", "#....", "#####"],
  M: ["#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"],
};

class Raster {
  readonly px: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    bg: Rgb,
  ) {
    this.px = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.px.set(bg, i * 3);
  }

  blend(x: number, y: number, c: Rgb, a: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || a <= 0) return;
    const i = (y * this.width + x) * 3;
    if (a >= 1) {
      this.px[i] = c[0];
      this.px[i + 1] = c[1];
      this.px[i + 2] = c[2];
      return;
    }
    for (let k = 0; k < 3; k++) this.px[i + k] = Math.round(this.px[i + k]! * (1 - a) + c[k]! * a);
  }

  fillRect(x0: number, y0: number, x1: number, y1: number, c: Rgb): void {
    for (let y = Math.max(0, Math.round(y0)); y < Math.min(this.height, Math.round(y1)); y++)
      for (let x = Math.max(0, Math.round(x0)); x < Math.min(this.width, Math.round(x1)); x++)
        this.blend(x, y, c, 1);
  }

  /** Text with the 5×7 font; (x, y) is the top-left corner, or the top-centre/top-right with `align`. */
  text(
    x: number,
    y: number,
    s: string,
    c: Rgb,
    scale = 1,
    align: "left" | "center" | "right" = "left",
  ): void {
    const adv = 6 * scale;
    const w = s.length * adv - scale;
    let ox = Math.round(align === "left" ? x : align === "center" ? x - w / 2 : x - w);
    const oy = Math.round(y);
    for (const ch of s) {
      const g = FONT[ch];
      if (g !== undefined) {
        for (let r = 0; r < 7; r++)
          for (let col = 0; col < 5; col++)
            if (g[r]![col] === "#")
              this.fillRect(
                ox + col * scale,
                oy + r * scale,
                ox + (col + 1) * scale,
                oy + (r + 1) * scale,
                c,
              );
      }
      ox += adv;
    }
  }
}

/** Anti-aliased coverage of thick lines and discs, composited once so overlaps do not darken. */
class Coverage {
  readonly a: Float32Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.a = new Float32Array(width * height);
  }

  private put(x: number, y: number, v: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || v <= 0) return;
    const i = y * this.width + x;
    if (v > this.a[i]!) this.a[i] = Math.min(1, v);
  }

  segment(x0: number, y0: number, x1: number, y1: number, lineWidth: number): void {
    const hw = lineWidth / 2;
    const pad = hw + 1;
    const dx = x1 - x0;
    const dy = y1 - y0;
    const len2 = dx * dx + dy * dy;
    for (let y = Math.floor(Math.min(y0, y1) - pad); y <= Math.ceil(Math.max(y0, y1) + pad); y++) {
      for (let x = Math.floor(Math.min(x0, x1) - pad); x <= Math.ceil(Math.max(x0, x1) + pad); x++) {
        const px = x + 0.5;
        const py = y + 0.5;
        const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((px - x0) * dx + (py - y0) * dy) / len2));
        const d = Math.hypot(px - (x0 + t * dx), py - (y0 + t * dy));
        this.put(x, y, hw + 0.5 - d);
      }
    }
  }

  polyline(pts: readonly Pt[], lineWidth: number): void {
    if (pts.length === 1) this.segment(pts[0]!.x, pts[0]!.y, pts[0]!.x, pts[0]!.y, lineWidth);
    for (let i = 1; i < pts.length; i++)
      this.segment(pts[i - 1]!.x, pts[i - 1]!.y, pts[i]!.x, pts[i]!.y, lineWidth);
  }

  disc(cx: number, cy: number, r: number): void {
    for (let y = Math.floor(cy - r - 1); y <= Math.ceil(cy + r + 1); y++)
      for (let x = Math.floor(cx - r - 1); x <= Math.ceil(cx + r + 1); x++)
        this.put(x, y, r + 0.5 - Math.hypot(x + 0.5 - cx, y + 0.5 - cy));
  }

  paint(img: Raster, c: Rgb, alpha = 1): void {
    for (let y = 0; y < this.height; y++)
      for (let x = 0; x < this.width; x++) {
        const v = this.a[y * this.width + x]!;
        if (v > 0) img.blend(x, y, c, v * alpha);
      }
  }
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO-HDLC), as PNG chunks use it. */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** Encodes 8-bit RGB pixels (row-major, 3 bytes a pixel) as a PNG file. */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3)
    throw new Error(`encodePng: ${rgb.length} bytes for ${width}×${height} RGB`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour RGB
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering (we use filter type 0 on every row)
  ihdr[12] = 0; // no interlace
  const stride = width * 3;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(raw, { level: 9 })),
    pngChunk("IEND", new Uint8Array(0)),
  ]);
}

/** The loss chart as RGB pixels (the same drawing as the SVG, with the built-in bitmap font). */
export function rasterChart(
  metrics: readonly Metrics[],
  opts: { width?: number; height?: number } = {},
): { width: number; height: number; rgb: Uint8Array } {
  const width = opts.width ?? 800;
  const height = opts.height ?? 400;
  const model = chartModel(metrics);
  const scale = width >= 600 && height >= 300 ? 2 : 1;
  const yLabels = model.y.ticks.map((t) => tickLabel(t, model.y.step));
  const labelW = Math.max(...yLabels.map((s) => s.length)) * 6 * scale;
  const f = frame(model, width, height, Math.max(40, labelW + 14 + 8 * scale));
  const c = CHART_COLORS;
  const img = new Raster(width, height, c.background);

  const ys = model.y.ticks.map((t) => Math.round(f.sy(t)));
  const xs = model.x.ticks.map((t) => Math.round(f.sx(t)));
  for (const y of ys) img.fillRect(f.left, y, f.right + 1, y + 1, c.grid);
  for (const x of xs) img.fillRect(x, f.top, x + 1, f.bottom, c.grid);

  const raw = new Coverage(width, height);
  raw.polyline(
    model.train.map((p) => ({ x: f.sx(p.x), y: f.sy(p.y) })),
    1.2,
  );
  raw.paint(img, c.train, RAW_ALPHA);
  const sm = new Coverage(width, height);
  sm.polyline(
    model.smooth.map((p) => ({ x: f.sx(p.x), y: f.sy(p.y) })),
    2.2,
  );
  sm.paint(img, c.train);
  const ev = new Coverage(width, height);
  const evPts = model.evals.map((p) => ({ x: f.sx(p.x), y: f.sy(p.y) }));
  ev.polyline(evPts, 2);
  for (const p of evPts) ev.disc(p.x, p.y, 3.5);
  ev.paint(img, c.eval);

  // axes and ticks on top of the data
  const bottom = Math.round(f.bottom);
  const left = Math.round(f.left);
  img.fillRect(left, bottom, f.right + 1, bottom + 1, c.axis);
  img.fillRect(left, f.top, left + 1, bottom + 1, c.axis);
  const ch = 7 * scale;
  ys.forEach((y, i) => {
    img.fillRect(left - 5, y, left, y + 1, c.axis);
    img.text(left - 8, y - Math.floor(ch / 2), yLabels[i]!, c.text, scale, "right");
  });
  xs.forEach((x, i) => {
    img.fillRect(x, bottom + 1, x + 1, bottom + 6, c.axis);
    img.text(x, bottom + 10, tickLabel(model.x.ticks[i]!, model.x.step), c.text, scale, "center");
  });
  img.text((f.left + f.right) / 2, height - 2 - ch, "step", c.text, scale, "center");
  img.text(4, 6, "loss", c.text, scale, "left");

  // legend above the plot, right-aligned
  const items: [string, (x: number, y: number) => void][] = [
    ["train", (x, y) => img.fillRect(x, y, x + 22, y + 1, mix(c.train, c.background, RAW_ALPHA))],
    ["EMA", (x, y) => img.fillRect(x, y - 1, x + 22, y + 1, c.train)],
    [
      "eval",
      (x, y) => {
        const cov = new Coverage(width, height);
        cov.segment(x, y, x + 22, y, 2);
        cov.disc(x + 11, y, 3.5);
        cov.paint(img, c.eval);
      },
    ],
  ];
  const itemWidth = (label: string) => 30 + label.length * 6 * scale + 16;
  let lx = f.right - items.reduce((a, [l]) => a + itemWidth(l), 0);
  const ly = Math.round(f.top / 2);
  for (const [label, sym] of items) {
    sym(lx, ly);
    img.text(lx + 28, ly - Math.floor(ch / 2), label, c.text, scale);
    lx += itemWidth(label);
  }
  return { width, height, rgb: img.px };
}

function mix(c: Rgb, bg: Rgb, a: number): Rgb {
  return [0, 1, 2].map((k) => Math.round(bg[k]! * (1 - a) + c[k]! * a)) as unknown as Rgb;
}

export function writePngChart(
  path: string,
  metrics: readonly Metrics[],
  opts: { width?: number; height?: number } = {},
): void {
  const r = rasterChart(metrics, opts);
  writeFileAtomic(path, encodePng(r.width, r.height, r.rgb));
}

// ---------------------------------------------------------------------------------------------------
// Terminal chart

const BRAILLE_BITS = [
  [0x01, 0x08],
  [0x02, 0x10],
  [0x04, 0x20],
  [0x40, 0x80],
];

/**
 * The loss curve as text: `height` rows of `width` braille cells (2×4 dots each) plotting the train
 * loss (averaged per dot column), eval points as '•', the y range labelled on the first and last rows,
 * then an x-axis line, the first and last step, and a legend.
 */
export function terminalChart(
  metrics: readonly Metrics[],
  opts: { width?: number; height?: number } = {},
): string {
  const W = Math.max(4, Math.floor(opts.width ?? 60));
  const H = Math.max(2, Math.floor(opts.height ?? 12));
  const train = trainRecords(metrics);
  const evals = evalRecords(metrics);
  const all = [...train, ...evals];
  const DW = W * 2;
  const DH = H * 4;
  let xMin = 0;
  let xMax = 1;
  let yMin = 0;
  let yMax = 1;
  if (all.length > 0) {
    xMin = Math.min(...all.map((m) => m.step));
    xMax = Math.max(...all.map((m) => m.step));
    yMin = Math.min(...all.map((m) => m.loss));
    yMax = Math.max(...all.map((m) => m.loss));
  }
  const col = (step: number) => (xMax === xMin ? 0 : Math.round(((step - xMin) / (xMax - xMin)) * (DW - 1)));
  const row = (loss: number) =>
    yMax === yMin ? DH >> 1 : Math.round(((yMax - loss) / (yMax - yMin)) * (DH - 1));

  const dots: boolean[][] = Array.from({ length: DH }, () => new Array<boolean>(DW).fill(false));
  // mean loss per dot column, then join consecutive columns with vertical runs
  const sum = new Array<number>(DW).fill(0);
  const cnt = new Array<number>(DW).fill(0);
  for (const m of train) {
    const c = col(m.step);
    sum[c]! += m.loss;
    cnt[c]!++;
  }
  let prev: { c: number; r: number } | null = null;
  for (let c = 0; c < DW; c++) {
    if (cnt[c] === 0) continue;
    const r = row(sum[c]! / cnt[c]!);
    if (prev === null) {
      dots[r]![c] = true;
    } else {
      // straight line from prev to (c, r) in dot space
      const n = Math.max(c - prev.c, Math.abs(r - prev.r));
      for (let k = 1; k <= n; k++) {
        const cc = Math.round(prev.c + ((c - prev.c) * k) / n);
        const rr = Math.round(prev.r + ((r - prev.r) * k) / n);
        dots[rr]![cc] = true;
      }
    }
    prev = { c, r };
  }
  const cells: string[][] = [];
  for (let cy = 0; cy < H; cy++) {
    const line: string[] = [];
    for (let cx = 0; cx < W; cx++) {
      let bits = 0;
      for (let dy = 0; dy < 4; dy++)
        for (let dx = 0; dx < 2; dx++) if (dots[cy * 4 + dy]![cx * 2 + dx]) bits |= BRAILLE_BITS[dy]![dx]!;
      line.push(bits === 0 ? " " : String.fromCharCode(0x2800 + bits));
    }
    cells.push(line);
  }
  for (const m of evals) cells[Math.floor(row(m.loss) / 4)]![Math.floor(col(m.step) / 2)] = "•";

  const fmt = (v: number) => {
    const span = Math.abs(yMax - yMin) || Math.abs(yMax) || 1;
    const d = Math.max(2, Math.min(6, Math.ceil(-Math.log10(span)) + 2));
    return v.toFixed(d);
  };
  const top = fmt(yMax);
  const bot = fmt(yMin);
  const gw = Math.max(top.length, bot.length);
  const lines: string[] = [];
  for (let cy = 0; cy < H; cy++) {
    const label = cy === 0 ? top : cy === H - 1 ? bot : "";
    const axis = cy === 0 || cy === H - 1 ? "┤" : "│";
    lines.push(`${label.padStart(gw)} ${axis}${cells[cy]!.join("")}`.trimEnd());
  }
  lines.push(`${" ".repeat(gw)} └${"─".repeat(W)}`);
  const first = all.length > 0 ? String(xMin) : "";
  const last = all.length > 0 ? String(xMax) : "";
  const mid = "step";
  const inner = W - first.length - last.length;
  const xl =
    inner >= mid.length + 2
      ? `${first}${" ".repeat(Math.floor((inner - mid.length) / 2))}${mid}${" ".repeat(Math.ceil((inner - mid.length) / 2))}${last}`
      : `${first}${" ".repeat(Math.max(1, inner))}${last}`;
  lines.push(`${" ".repeat(gw + 2)}${xl}`);
  lines.push(`${" ".repeat(gw + 2)}⣿ train loss${evals.length > 0 ? "   • eval loss" : ""}`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------------
// Trainer events

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
