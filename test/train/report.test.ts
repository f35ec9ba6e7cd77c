import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import { inflateSync } from "node:zlib";
import type { Metrics, TrainSummary } from "../../src/train/events.js";
import {
  CHART_COLORS,
  niceTicks,
  reportEvents,
  reportSummaryLines,
  terminalChart,
  writeHtmlReport,
  writePngChart,
} from "../../src/train/report.js";

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

// A bit-at-a-time CRC-32, independent of the table-driven one in report.ts.
function crcBitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

interface Decoded {
  width: number;
  height: number;
  rgb: Uint8Array;
  chunkTypes: string[];
}

function decodePng(buf: Buffer): Decoded {
  assert.deepEqual(
    [...buf.subarray(0, 8)],
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    "PNG signature",
  );
  let off = 8;
  const types: string[] = [];
  const idat: Buffer[] = [];
  let width = 0;
  let height = 0;
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString("latin1", off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    const crc = buf.readUInt32BE(off + 8 + len);
    assert.equal(crc, crcBitwise(buf.subarray(off + 4, off + 8 + len)), `CRC of ${type}`);
    types.push(type);
    if (type === "IHDR") {
      assert.equal(len, 13);
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, "bit depth");
      assert.equal(data[9], 2, "colour type RGB");
      assert.deepEqual([data[10], data[11], data[12]], [0, 0, 0]);
    }
    if (type === "IDAT") idat.push(Buffer.from(data));
    off += 12 + len;
  }
  assert.equal(off, buf.length);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 3;
  assert.equal(raw.length, (stride + 1) * height);
  const rgb = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    assert.equal(raw[y * (stride + 1)], 0, "filter type 0");
    rgb.set(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), y * stride);
  }
  return { width, height, rgb, chunkTypes: types };
}

function countColour(d: Decoded, c: readonly number[]): number {
  let n = 0;
  for (let i = 0; i < d.width * d.height; i++)
    if (d.rgb[i * 3] === c[0] && d.rgb[i * 3 + 1] === c[1] && d.rgb[i * 3 + 2] === c[2]) n++;
  return n;
}

test("PNG chart decodes (signature, IHDR, CRCs, inflate) and shows the train and eval lines", () => {
  const dir = tmp();
  try {
    const path = join(dir, "loss.png");
    writePngChart(path, makeMetrics(200, 40));
    const d = decodePng(readFileSync(path));
    assert.deepEqual(d.chunkTypes, ["IHDR", "IDAT", "IEND"]);
    assert.equal(d.width, 800);
    assert.equal(d.height, 400);
    assert.ok(countColour(d, CHART_COLORS.train) > 300, "train-loss line colour appears");
    assert.ok(countColour(d, CHART_COLORS.eval) > 50, "eval colour appears");
    assert.ok(countColour(d, CHART_COLORS.axis) > 500, "axes, ticks and labels appear");
    assert.ok(countColour(d, CHART_COLORS.background) > 800 * 400 * 0.5, "mostly background");

    const small = join(dir, "small.png");
    writePngChart(small, makeMetrics(30, 10), { width: 320, height: 200 });
    const s = decodePng(readFileSync(small));
    assert.equal(s.width, 320);
    assert.equal(s.height, 200);
    assert.ok(countColour(s, CHART_COLORS.train) > 20);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("PNG chart of no metrics or one step is still a valid image", () => {
  const dir = tmp();
  try {
    writePngChart(join(dir, "a.png"), []);
    assert.equal(decodePng(readFileSync(join(dir, "a.png"))).width, 800);
    writePngChart(join(dir, "b.png"), makeMetrics(1, 1));
    assert.ok(countColour(decodePng(readFileSync(join(dir, "b.png"))), CHART_COLORS.eval) > 0);
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
    assert.equal(decodePng(readFileSync(join(dir, "loss.png"))).width, 800);
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
