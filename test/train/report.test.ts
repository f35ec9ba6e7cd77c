import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import { PNG } from "pngjs";
import { CHART_COLORS, niceTicks, type Pt, type Rgb } from "../../src/train/chart.js";
import { pngChart, writePngChart } from "../../src/train/chart-png.js";
import { svgChart } from "../../src/train/chart-svg.js";
import type { Metrics, TrainSummary } from "../../src/train/events.js";
import { reportEvents } from "../../src/train/report.js";
import { writeHtmlReport } from "../../src/train/report-html.js";
import { reportSummaryLines } from "../../src/train/report-summary.js";
import { terminalChart } from "../../src/train/terminal-chart.js";

function makeMetrics(steps: number, evalEvery: number, noise = 0.4): Metrics[] {
  const out: Metrics[] = [];
  let seed = 7;
  const rnd = () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  for (let s = 1; s <= steps; s++) {
    const loss = 0.9 + 2.6 * Math.exp(-s / (steps / 5)) + (rnd() - 0.5) * noise;
    out.push({
      type: "train",
      step: s,
      epoch: 0,
      loss,
      lr: 2e-4,
      gradNorm: 1,
      tokens: 512,
      tokensPerSec: 3000,
      elapsedSec: s / 5,
    });
    if (s % evalEvery === 0) {
      const el = 1.1 + 2.4 * Math.exp(-s / (steps / 4));
      out.push({ type: "eval", step: s, loss: el, perplexity: Math.exp(el), tokens: 1000 });
    }
  }
  return out;
}

const summary: TrainSummary = {
  mode: "lora",
  outDir: "runs/demo",
  steps: 120,
  seconds: 83.4,
  trainableParams: 12345,
  totalParams: 1234567,
  finalTrainLoss: 1.0123,
  firstEvalLoss: 3.4,
  finalEvalLoss: 1.2,
  savedBytes: 51234,
  baseBytes: 20_480_000,
};

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "lora-ts-report-"));
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Decodes with pngjs (which checks the chunk CRCs and the zlib stream) after checking the signature. */
function decode(buf: Buffer): PNG {
  assert.deepEqual([...buf.subarray(0, 8)], PNG_SIGNATURE, "PNG signature");
  return PNG.sync.read(buf, { checkCRC: true });
}

function pixel(png: PNG, x: number, y: number): [number, number, number] {
  const i = (Math.round(y) * png.width + Math.round(x)) * 4;
  assert.equal(png.data[i + 3], 255, `opaque at ${x},${y}`);
  return [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
}

function near(a: readonly number[], b: readonly number[], tol: number): boolean {
  return Math.max(...a.map((v, k) => Math.abs(v - b[k]!))) <= tol;
}

/** Pixels within `tol` of colour c in every channel. */
function countNear(png: PNG, c: Rgb, tol = 24): number {
  let n = 0;
  for (let y = 0; y < png.height; y++)
    for (let x = 0; x < png.width; x++) if (near(pixel(png, x, y), c, tol)) n++;
  return n;
}

/** Some pixel within `r` of (x, y) satisfies `ok`. */
function someAround(png: PNG, x: number, y: number, r: number, ok: (c: number[]) => boolean): boolean {
  for (let dy = -Math.ceil(r); dy <= Math.ceil(r); dy++)
    for (let dx = -Math.ceil(r); dx <= Math.ceil(r); dx++) {
      const px = Math.round(x - 0.5) + dx;
      const py = Math.round(y - 0.5) + dy;
      if (Math.hypot(dx, dy) <= r && px >= 0 && py >= 0 && px < png.width && py < png.height)
        if (ok(pixel(png, px, py))) return true;
    }
  return false;
}

/** The vertices of an SVG path drawn by svgChart, in pixels. */
function pathVertices(svg: string, cls: string): Pt[] {
  const m = new RegExp(`<path class="${cls}" d="([^"]*)"`).exec(svg);
  assert.ok(m, `path ${cls}`);
  return [...m[1]!.matchAll(/[ML](-?[\d.]+),(-?[\d.]+)/g)].map((v) => ({ x: Number(v[1]), y: Number(v[2]) }));
}

function circleCentres(svg: string): Pt[] {
  return [...svg.matchAll(/<circle cx="(-?[\d.]+)" cy="(-?[\d.]+)" r="3.5"><title>/g)].map((v) => ({
    x: Number(v[1]),
    y: Number(v[2]),
  }));
}

function distToPolyline(p: Pt, pts: readonly Pt[]): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < pts.length; i++) {
    const a = pts[Math.max(0, i - 1)]!;
    const b = pts[i]!;
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const len2 = dx * dx + dy * dy;
    const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((p.x - a.x) * dx + (p.y - a.y) * dy) / len2));
    best = Math.min(best, Math.hypot(p.x - (a.x + t * dx), p.y - (a.y + t * dy)));
  }
  return best;
}

/** The plot area, from the SVG's two axis lines (x axis first, then y axis). */
function plotArea(svg: string): { left: number; right: number; top: number; bottom: number } {
  const g =
    /<g class="axes"[^>]*>\n<line x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="[\d.]+"\/>\n<line x1="[\d.]+" y1="([\d.]+)"/.exec(
      svg,
    );
  assert.ok(g, "axes in the SVG");
  return { left: Number(g[1]), bottom: Number(g[2]), right: Number(g[3]), top: Number(g[4]) };
}

const isBlue = (c: number[]) => c[2]! > c[0]! + 20 && c[2]! < 250;

test("loss.png is the SVG chart rendered: PNG signature and CRCs, size, the lines where the SVG draws them", () => {
  const dir = tmp();
  try {
    const path = join(dir, "loss.png");
    const metrics = makeMetrics(200, 40);
    writePngChart(path, metrics);
    const svg = svgChart(metrics);
    const png = decode(readFileSync(path));
    assert.equal(png.width, 800);
    assert.equal(png.height, 400);

    // The smoothed line (2 px, full colour) passes through every vertex of the SVG's train-ema path,
    // the faint raw line through those of train-raw, and each eval point is a disc of the eval colour.
    const ema = pathVertices(svg, "train-ema");
    const raw = pathVertices(svg, "train-raw");
    const evals = pathVertices(svg, "eval");
    assert.equal(ema.length, 200);
    const onEma = ema.filter((p) => someAround(png, p.x, p.y, 1.5, (c) => near(c, CHART_COLORS.train, 40)));
    assert.ok(onEma.length >= 190, `smoothed line at ${onEma.length} of 200 vertices`);
    const onRaw = raw.filter((p) => someAround(png, p.x, p.y, 1.5, isBlue));
    assert.ok(onRaw.length >= 190, `raw line at ${onRaw.length} of 200 vertices`);
    const centres = circleCentres(svg);
    assert.equal(centres.length, 5);
    assert.deepEqual(centres, evals);
    for (const p of centres)
      assert.ok(near(pixel(png, p.x - 0.5, p.y - 0.5), CHART_COLORS.eval, 24), `eval point ${p.x},${p.y}`);

    // Inside the plot, away from the lines and the grid, there is only background.
    const area = plotArea(svg);
    const gx = [...svg.matchAll(/<line x1="([\d.]+)" y1="[\d.]+" x2="\1" y2="[\d.]+"\/>/g)].map((m) =>
      Number(m[1]),
    );
    const gy = [...svg.matchAll(/<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="\1"\/>/g)].map((m) =>
      Number(m[1]),
    );
    let checked = 0;
    for (let y = Math.ceil(area.top) + 2; y < area.bottom - 2; y += 3)
      for (let x = Math.ceil(area.left) + 2; x < area.right - 2; x += 3) {
        const c = { x: x + 0.5, y: y + 0.5 };
        if (gx.some((v) => Math.abs(v - c.x) < 1.5) || gy.some((v) => Math.abs(v - c.y) < 1.5)) continue;
        if (Math.min(distToPolyline(c, raw), distToPolyline(c, ema), distToPolyline(c, evals)) < 5) continue;
        assert.deepEqual(pixel(png, x, y), [...CHART_COLORS.background], `background at ${x},${y}`);
        checked++;
      }
    assert.ok(checked > 5000, `${checked} background samples`);
    // The x axis is drawn along the plot's bottom edge.
    let axis = 0;
    for (let x = Math.ceil(area.left) + 1; x < area.right - 1; x++)
      if (someAround(png, x + 0.5, area.bottom, 1, (c) => c[0]! < 200 && near(c, [c[0]!, c[0]!, c[0]!], 4)))
        axis++;
    assert.ok(axis >= 0.95 * (area.right - area.left - 2), `x axis drawn over ${axis} columns`);

    assert.ok(countNear(png, CHART_COLORS.train) > 300, "train-loss line colour appears");
    assert.ok(countNear(png, CHART_COLORS.eval) > 50, "eval colour appears");
    assert.ok(countNear(png, CHART_COLORS.background, 0) > 800 * 400 * 0.5, "mostly background");

    const small = join(dir, "small.png");
    writePngChart(small, makeMetrics(30, 10), { width: 320, height: 200 });
    const s = decode(readFileSync(small));
    assert.equal(s.width, 320);
    assert.equal(s.height, 200);
    assert.ok(countNear(s, CHART_COLORS.train) > 20);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("loss.png without system fonts: the same lines, only the text left out", (t) => {
  const metrics = makeMetrics(60, 20);
  const svg = svgChart(metrics);
  const withFonts = decode(pngChart(metrics));
  const without = decode(pngChart(metrics, { systemFonts: false }));
  assert.equal(without.width, 800);
  assert.equal(without.height, 400);
  const area = plotArea(svg);
  for (let y = Math.ceil(area.top) + 1; y < area.bottom - 1; y++)
    for (let x = Math.ceil(area.left) + 1; x < area.right - 1; x++)
      assert.deepEqual(pixel(without, x, y), pixel(withFonts, x, y), `plot pixel ${x},${y}`);
  // Left of the y axis there are only the tick labels and the "loss" title: blank without fonts.
  let ink = 0;
  for (let y = 0; y < without.height; y++)
    for (let x = 0; x < area.left - 6; x++)
      if (!near(pixel(without, x, y), CHART_COLORS.background, 0)) ink++;
  assert.equal(ink, 0, "no text without fonts");
  let inkWithFonts = 0;
  for (let y = 0; y < withFonts.height; y++)
    for (let x = 0; x < area.left - 6; x++)
      if (near(pixel(withFonts, x, y), CHART_COLORS.text, 60)) inkWithFonts++;
  if (inkWithFonts === 0)
    t.diagnostic("this machine has no system fonts: loss.png is drawn without its labels");
  else assert.ok(inkWithFonts > 100, `y tick labels drawn (${inkWithFonts} px)`);
});

test("PNG chart of no metrics or one step is still a valid image", () => {
  const dir = tmp();
  try {
    writePngChart(join(dir, "a.png"), []);
    assert.equal(decode(readFileSync(join(dir, "a.png"))).width, 800);
    writePngChart(join(dir, "b.png"), makeMetrics(1, 1));
    assert.ok(countNear(decode(readFileSync(join(dir, "b.png"))), CHART_COLORS.eval) > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function pathPoints(html: string, cls: string): number {
  const m = new RegExp(`<path class="${cls}" d="([^"]*)"`).exec(html);
  assert.ok(m, `path ${cls}`);
  return (m[1]!.match(/[ML]/g) ?? []).length;
}

test("HTML report: self-contained, SVG paths with one point per step, summary numbers", () => {
  const dir = tmp();
  try {
    const path = join(dir, "report.html");
    const metrics = makeMetrics(120, 20);
    writeHtmlReport(path, metrics, summary);
    const html = readFileSync(path, "utf8");
    assert.match(html, /^<!doctype html>/);
    assert.ok(html.includes("<svg"));
    assert.equal(pathPoints(html, "train-raw"), 120);
    assert.equal(pathPoints(html, "train-ema"), 120);
    assert.equal(pathPoints(html, "eval"), 6);
    assert.equal((html.match(/<circle /g) ?? []).length, 6 + 1); // eval points + legend marker
    assert.ok(!/<script|<link|@import|url\(|src=/i.test(html), "no external resources");
    for (const s of [
      "LoRA adapter",
      "12,345 of 1,234,567 (1.00%)",
      "1m23s",
      "1.0123",
      "3.4000 → 1.2000",
      "29.96 → 3.32",
      "51.2 KB adapter vs 20.5 MB base",
      "0.25% of base",
      ">step<",
      ">loss<",
      "smoothed (EMA)",
      "eval loss",
    ])
      assert.ok(html.includes(s), `report contains ${s}`);
    // axis tick labels are there
    assert.ok(html.includes(">100</text>"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("terminal chart: requested height, decreasing loss goes down left to right, eval as •", () => {
  const metrics = makeMetrics(100, 25, 0);
  const chart = terminalChart(metrics, { width: 40, height: 8 });
  const lines = chart.split("\n");
  const rows = lines.filter((l) => /[┤│]/.test(l));
  assert.equal(rows.length, 8);
  assert.ok(rows[0]!.includes("┤") && rows[7]!.includes("┤"), "min and max labels");
  const [maxLabel, minLabel] = [rows[0]!.split("┤")[0]!.trim(), rows[7]!.split("┤")[0]!.trim()];
  assert.ok(Number(maxLabel) > Number(minLabel));
  assert.ok(chart.includes("•"));
  // per cell column, the top-most row with a mark: never rises from left to right
  const cells = rows.map((r) => [...r.slice(r.search(/[┤│]/) + 1)]);
  let prevRow = -1;
  let seen = 0;
  for (let c = 0; c < 40; c++) {
    const r = cells.findIndex((row) => row[c] !== undefined && row[c] !== " " && row[c] !== "•");
    if (r < 0) continue;
    seen++;
    assert.ok(r >= prevRow, `column ${c}: row ${r} above previous ${prevRow}`);
    prevRow = r;
  }
  assert.ok(seen >= 38, `curve spans the width (${seen} columns)`);
  assert.equal(
    cells.findIndex((row) => row[0] !== " "),
    0,
    "starts at the top",
  );
  assert.equal(prevRow, 7, "ends on the bottom row");
  assert.ok(lines.some((l) => l.includes("└") && l.includes("─")));
  assert.ok(
    lines.some((l) => /^\s+1\s+step\s+100$/.test(l)),
    "x labels",
  );

  const def = terminalChart(metrics)
    .split("\n")
    .filter((l) => /[┤│]/.test(l));
  assert.equal(def.length, 12);

  // No records: the frame alone, at the requested size, with nothing plotted, no step numbers and
  // no eval entry in the legend.
  for (const [opts, w, h] of [
    [{}, 60, 12],
    [{ width: 10, height: 3 }, 10, 3],
  ] as const) {
    const empty = terminalChart([], opts).split("\n");
    const plot = empty.filter((l) => /[┤│]/.test(l));
    assert.equal(plot.length, h);
    for (const l of plot) assert.match(l, /[┤│]$/, `an empty plot row: ${JSON.stringify(l)}`);
    assert.equal(empty.length, h + 3, "plot rows, the x axis, its labels, the legend");
    assert.equal(empty[h]!.trim(), `└${"─".repeat(w)}`);
    assert.doesNotMatch(empty[h + 1]!, /\d/, "no step range without records");
    assert.equal(empty[h + 2]!.trim(), "⣿ train loss");
  }
});

test("summary lines and niceTicks", () => {
  const lines = reportSummaryLines(summary);
  assert.ok(
    lines.some((l) => l.startsWith("Trainable parameters:") && l.includes("12,345 of 1,234,567 (1.00%)")),
  );
  assert.ok(lines.some((l) => l.includes("3.4000 → 1.2000")));
  assert.ok(lines.some((l) => l.includes("399.7× smaller")));
  const full = reportSummaryLines({
    ...summary,
    mode: "full",
    firstEvalLoss: null,
    finalEvalLoss: null,
    savedBytes: 20_480_000,
  });
  assert.ok(full.some((l) => l.includes("full fine-tuning")));
  // One evaluation only (no start eval): its value and when, never an arrow from a dash.
  const endOnly = reportSummaryLines({ ...summary, firstEvalLoss: null, finalEvalLoss: 2 });
  assert.ok(
    endOnly.some((l) => /^Eval loss:\s+2\.0000 \(at the end only\)$/.test(l)),
    endOnly.join("\n"),
  );
  assert.ok(endOnly.some((l) => /^Eval perplexity:\s+7\.39 \(at the end only\)$/.test(l)));
  assert.ok(!endOnly.some((l) => l.includes("—")), endOnly.join("\n"));
  assert.ok(full.some((l) => l.includes("1.00× the base")));
  assert.deepEqual(niceTicks(0.71, 3.45, 5).ticks, [0.5, 1, 1.5, 2, 2.5, 3, 3.5]);
  assert.deepEqual(niceTicks(1, 200, 8, true).ticks, [0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200]);
});

test("reportEvents writes report.html and loss.png and prints chart + summary; merges metrics.jsonl", () => {
  const dir = tmp();
  try {
    const metrics = makeMetrics(40, 10);
    // steps 1..20 come from a previous (resumed) process via metrics.jsonl
    const jsonl = join(dir, "metrics.jsonl");
    writeFileSync(
      jsonl,
      metrics
        .filter((m) => m.step <= 20)
        .map((m) => `${JSON.stringify(m)}\n`)
        .join(""),
    );
    let printed = "";
    const stream = new Writable({
      write(chunk, _enc, cb) {
        printed += chunk.toString();
        cb();
      },
    });
    const ev = reportEvents(dir, { metricsPath: jsonl, stream });
    for (const m of metrics.filter((x) => x.step > 20)) {
      if (m.type === "train") ev.onStep?.(m);
      else ev.onEval?.(m);
    }
    ev.onEnd?.({ ...summary, outDir: dir, steps: 40 });
    const html = readFileSync(join(dir, "report.html"), "utf8");
    assert.equal(pathPoints(html, "train-raw"), 40);
    assert.equal(pathPoints(html, "eval"), 4);
    assert.equal(decode(readFileSync(join(dir, "loss.png"))).width, 800);
    assert.ok(printed.includes("┤"));
    assert.ok(printed.includes("Trainable parameters:"));
    assert.ok(printed.includes(join(dir, "report.html")));

    // default metricsPath is outDir/metrics.jsonl; null turns the history off
    const again = reportEvents(dir, { stream });
    const off = reportEvents(dir, { stream, metricsPath: null });
    for (const m of metrics.filter((x) => x.step > 30)) {
      for (const e of [again, off]) {
        if (m.type === "train") e.onStep?.(m);
        else e.onEval?.(m);
      }
    }
    again.onEnd?.({ ...summary, outDir: dir, steps: 40 });
    assert.equal(pathPoints(readFileSync(join(dir, "report.html"), "utf8"), "train-raw"), 20 + 10);
    off.onEnd?.({ ...summary, outDir: dir, steps: 40 });
    assert.equal(pathPoints(readFileSync(join(dir, "report.html"), "utf8"), "train-raw"), 10);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
