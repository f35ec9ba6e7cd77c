/**
 * The loss curve for the terminal, drawn in braille cells (no package draws one), with the y range,
 * the step range and a legend.
 */
import { evalRecords, trainRecords } from "./chart.js";
import type { Metrics } from "./events.js";

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
