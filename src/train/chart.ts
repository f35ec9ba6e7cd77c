/**
 * The loss chart's model, shared by the SVG/PNG chart and the HTML report: metrics records → train,
 * smoothed and eval series, round axis ticks, colours, and the mapping from data to pixels.
 */
import type { EvalMetrics, Metrics, StepMetrics } from "./events.js";

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
/** Opacity of the raw train-loss line. */
export const RAW_ALPHA = 0.3;
export const EMA_BETA = 0.9;

export interface Pt {
  x: number;
  y: number;
}

export interface Axis {
  lo: number;
  hi: number;
  step: number;
  ticks: number[];
}

export interface ChartModel {
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

/** A tick value with as many decimals as the tick step needs. */
export function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
  return v.toFixed(Math.min(decimals, 10));
}

/** The train records with a finite loss. */
export function trainRecords(metrics: readonly Metrics[]): StepMetrics[] {
  return metrics.filter((m): m is StepMetrics => m.type === "train" && Number.isFinite(m.loss));
}

/** The eval records with a finite loss. */
export function evalRecords(metrics: readonly Metrics[]): EvalMetrics[] {
  return metrics.filter((m): m is EvalMetrics => m.type === "eval" && Number.isFinite(m.loss));
}

/** Series in data units (step, loss) and axes whose range covers all of them. */
export function chartModel(metrics: readonly Metrics[]): ChartModel {
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

/** The plot area in pixels and the data → pixel mapping. */
export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  sx(x: number): number;
  sy(y: number): number;
}

export function frame(model: ChartModel, width: number, height: number, left: number): Frame {
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
