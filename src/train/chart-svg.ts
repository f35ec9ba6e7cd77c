/**
 * The loss chart as SVG: grid, axes with round ticks, the raw and smoothed train loss, the eval loss
 * with points, and a legend. report.html inlines it and loss.png is this SVG rendered (chart-png.ts).
 */
import {
  CHART_COLORS,
  chartModel,
  type Frame,
  frame,
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
