/**
 * The loss chart as SVG: grid, axes with round ticks, the raw and smoothed train loss, the eval loss
 * with points, and a legend. report.html inlines it and loss.png is this SVG rendered (chart-png.ts).
 * svgSeriesChart: several labelled lines on one chart, optionally with a log x axis (the sweep report).
 */
import {
  CHART_COLORS,
  chartModel,
  type Frame,
  frame,
  niceTicks,
  type Pt,
  RAW_ALPHA,
  type Rgb,
  tickLabel,
} from "./chart.js";
import type { Metrics } from "./events.js";

function hex(c: Rgb): string {
  return `#${c.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

function pathD(points: readonly Pt[], f: Frame): string {
  return points
    .map((p, i) => `${i === 0 ? "M" : "L"}${f.sx(p.x).toFixed(2)},${f.sy(p.y).toFixed(2)}`)
    .join(" ");
}

/** The fonts of the chart in report.html: the browser's interface font. */
export const BROWSER_FONTS = "system-ui, -apple-system, 'Segoe UI', sans-serif";

/** The loss chart as a standalone SVG element (`fontFamily`: a CSS font-family list, default BROWSER_FONTS). */
export function svgChart(
  metrics: readonly Metrics[],
  opts: { width?: number; height?: number; fontFamily?: string } = {},
): string {
  const width = opts.width ?? 800;
  const height = opts.height ?? 400;
  const model = chartModel(metrics);
  const f = frame(model, width, height, 64);
  const c = CHART_COLORS;
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="Loss per step" font-family="${opts.fontFamily ?? BROWSER_FONTS}" font-size="12">`,
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
  const itemW = [100, 140, 90];
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

/** Line colours of a multi-series chart (one per series, cycling). */
export const SERIES_COLORS: readonly Rgb[] = [
  [31, 119, 180],
  [228, 87, 46],
  [44, 160, 44],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
];

export interface Series {
  label: string;
  /** Points in data units; drawn in the order given. */
  points: readonly Pt[];
}

export interface SeriesChartOptions {
  xLabel: string;
  yLabel: string;
  /** A log₁₀ x axis (x must be > 0) with ticks at 1, 2 and 5 × 10^k. */
  logX?: boolean;
  width?: number;
  height?: number;
  fontFamily?: string;
  /** aria-label of the SVG. */
  title?: string;
}

/** A tick value short: 20000 → "20k", 1500000 → "1.5M". */
export function compactNumber(v: number): string {
  const a = Math.abs(v);
  const short = (x: number) => String(Number(x.toPrecision(3)));
  if (a >= 1e6) return `${short(v / 1e6)}M`;
  if (a >= 1e3) return `${short(v / 1e3)}k`;
  return short(v);
}

/** The log axis: bounds in log₁₀ units, ticks (in data units) at 1, 2, 5 × 10^k, or only 10^k when those are too many. */
export function logTicks(min: number, max: number): { lo: number; hi: number; ticks: number[] } {
  const lmin = Math.log10(min);
  const lmax = Math.log10(max);
  const pad = Math.max(0.05 * (lmax - lmin), 0.05);
  const lo = lmin - pad;
  const hi = lmax + pad;
  const all: number[] = [];
  const decades: number[] = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) {
    for (const m of [1, 2, 5]) {
      const v = Number((m * 10 ** k).toPrecision(12));
      if (Math.log10(v) < lo - 1e-12 || Math.log10(v) > hi + 1e-12) continue;
      all.push(v);
      if (m === 1) decades.push(v);
    }
  }
  return { lo, hi, ticks: all.length > 10 && decades.length >= 2 ? decades : all };
}

/**
 * Several lines in one chart (one per series, with points), e.g. validation loss against r per
 * target set; a legend lists the series. Points with a non-finite coordinate (or x ≤ 0 on a log axis)
 * are left out.
 */
export function svgSeriesChart(series: readonly Series[], o: SeriesChartOptions): string {
  const width = o.width ?? 800;
  const height = o.height ?? 400;
  const tx = (x: number) => (o.logX ? Math.log10(x) : x);
  const ok = (p: Pt) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.logX || p.x > 0);
  const clean = series.map((s) => ({ label: s.label, points: s.points.filter(ok) }));
  const all = clean.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const xMin = xs.length ? Math.min(...xs) : 1;
  const xMax = xs.length ? Math.max(...xs) : 10;
  let xAxis: { lo: number; hi: number; step: number; ticks: number[] };
  let xTicks: { at: number; label: string }[];
  if (o.logX) {
    const lt = logTicks(xMin, xMax);
    xAxis = { lo: lt.lo, hi: lt.hi, step: 1, ticks: lt.ticks.map(Math.log10) };
    xTicks = lt.ticks.map((v) => ({ at: Math.log10(v), label: compactNumber(v) }));
  } else {
    xAxis = niceTicks(xMin, xMax === xMin ? xMin + 1 : xMax, 8);
    xTicks = xAxis.ticks.map((v) => ({ at: v, label: tickLabel(v, xAxis.step) }));
  }
  const yAxis = niceTicks(ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1, 5);
  const f = frame({ train: [], smooth: [], evals: [], x: xAxis, y: yAxis }, width, height, 64);
  const c = CHART_COLORS;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" class="series-chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escAttr(o.title ?? `${o.yLabel} against ${o.xLabel}`)}" font-family="${o.fontFamily ?? BROWSER_FONTS}" font-size="12">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="${hex(c.background)}"/>`);
  out.push(`<g class="grid" stroke="${hex(c.grid)}" stroke-width="1">`);
  for (const t of yAxis.ticks)
    out.push(`<line x1="${f.left}" y1="${f.sy(t).toFixed(1)}" x2="${f.right}" y2="${f.sy(t).toFixed(1)}"/>`);
  for (const t of xTicks)
    out.push(
      `<line x1="${f.sx(t.at).toFixed(1)}" y1="${f.top}" x2="${f.sx(t.at).toFixed(1)}" y2="${f.bottom}"/>`,
    );
  out.push("</g>");
  out.push(`<g class="axes" stroke="${hex(c.axis)}" stroke-width="1">`);
  out.push(`<line x1="${f.left}" y1="${f.bottom}" x2="${f.right}" y2="${f.bottom}"/>`);
  out.push(`<line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.bottom}"/>`);
  out.push("</g>");
  out.push(`<g class="tick-labels" fill="${hex(c.text)}">`);
  for (const t of yAxis.ticks)
    out.push(
      `<text x="${f.left - 8}" y="${(f.sy(t) + 4).toFixed(1)}" text-anchor="end">${tickLabel(t, yAxis.step)}</text>`,
    );
  for (const t of xTicks)
    out.push(
      `<text x="${f.sx(t.at).toFixed(1)}" y="${f.bottom + 19}" text-anchor="middle">${t.label}</text>`,
    );
  out.push(
    `<text x="${(f.left + f.right) / 2}" y="${height - 8}" text-anchor="middle" font-size="13">${escAttr(o.xLabel)}${o.logX ? " (log scale)" : ""}</text>`,
  );
  out.push(
    `<text transform="translate(16 ${(f.top + f.bottom) / 2}) rotate(-90)" text-anchor="middle" font-size="13">${escAttr(o.yLabel)}</text>`,
  );
  out.push("</g>");
  clean.forEach((s, i) => {
    const col = hex(SERIES_COLORS[i % SERIES_COLORS.length]!);
    const pts = s.points.map((p) => ({ x: tx(p.x), y: p.y }));
    out.push(`<g class="series" data-label="${escAttr(s.label)}">`);
    if (pts.length > 1)
      out.push(
        `<path d="${pathD(pts, f)}" fill="none" stroke="${col}" stroke-width="2" stroke-linejoin="round"/>`,
      );
    for (const [k, p] of pts.entries())
      out.push(
        `<circle cx="${f.sx(p.x).toFixed(2)}" cy="${f.sy(p.y).toFixed(2)}" r="3.5" fill="${col}"><title>${escAttr(s.label)}: ${compactNumber(s.points[k]!.x)}, ${p.y.toFixed(4)}</title></circle>`,
      );
    out.push("</g>");
  });
  if (all.length === 0)
    out.push(
      `<text x="${(f.left + f.right) / 2}" y="${(f.top + f.bottom) / 2}" text-anchor="middle" fill="#888">no data</text>`,
    );
  out.push(`<g class="legend" fill="${hex(c.text)}">`);
  clean.forEach((s, i) => {
    const col = hex(SERIES_COLORS[i % SERIES_COLORS.length]!);
    out.push(
      `<g transform="translate(${f.right - 220} ${f.top + 12 + 16 * i})"><line x1="0" y1="0" x2="22" y2="0" stroke="${col}" stroke-width="2"/><text x="28" y="4">${escAttr(s.label)}</text></g>`,
    );
  });
  out.push("</g>");
  out.push("</svg>");
  return out.join("\n");
}

function escAttr(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
