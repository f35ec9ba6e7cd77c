/**
 * The sweep's outputs without training: the multi-series chart of chart-svg.ts (log x axis), the
 * paper's table (mean ± std over seeds, best cell), results.csv quoting, rows read from a run folder,
 * the terminal tables and report.html.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { compactNumber, logTicks, svgSeriesChart } from "../../src/train/chart-svg.js";
import type { RunSpec } from "../../src/train/sweep-plan.js";
import { sweepReportHtml } from "../../src/train/sweep-report.js";
import {
  cellText,
  paperTable,
  type ResultRow,
  resultRow,
  resultsCsv,
} from "../../src/train/sweep-results.js";
import { planTable, summaryTable } from "../../src/train/sweep-table.js";
import { tempDir } from "../models/fixtures.js";

function row(targets: string, r: number, seed: number, loss: number | null, status = "done"): ResultRow {
  return {
    name: `${targets}-r${r}-s${seed}`,
    targets,
    r,
    alpha: 16,
    seed,
    trainable_params: 100 * r,
    final_train_loss: loss,
    best_val_loss: loss,
    best_val_perplexity: loss === null ? null : Math.exp(loss),
    final_val_loss: loss,
    final_val_perplexity: loss === null ? null : Math.exp(loss),
    tokens_per_sec: 1000,
    seconds: 1,
    status,
    error: status === "failed" ? 'bad, "quoted"\nthing' : null,
  };
}

const rows = [
  row("q", 1, 0, 2.0),
  row("q", 1, 1, 2.2),
  row("q", 8, 0, 1.5),
  row("q", 8, 1, 1.7),
  row("q,v", 1, 0, 1.9),
  row("q,v", 1, 1, null, "failed"),
  row("q,v", 8, 0, 1.4),
  row("q,v", 8, 1, 1.4),
];

test("paperTable: mean ± sample std over seeds, failed seeds left out and counted, the lowest mean is best", () => {
  const t = paperTable(rows);
  assert.deepEqual(t.targets, ["q", "q,v"]);
  assert.deepEqual(t.ranks, [1, 8]);
  const c = t.cell("q", 1)!;
  assert.ok(Math.abs(c.mean! - 2.1) < 1e-12);
  assert.ok(Math.abs(c.std! - Math.sqrt(0.02)) < 1e-12);
  assert.equal(cellText(c), "2.100 ± 0.141");
  assert.equal(cellText(t.cell("q,v", 1)), "1.900 (1/2)");
  assert.equal(t.best, t.cell("q,v", 8));
  assert.equal(cellText(t.best!), "1.400 ± 0.000");
});

test("results.csv: one header and one line per run; commas, quotes and line breaks are quoted", () => {
  const csv = resultsCsv(rows);
  const lines = csv.trimEnd().split("\n");
  assert.equal(
    lines[0],
    "name,targets,r,alpha,seed,trainable_params,final_train_loss,best_val_loss,best_val_perplexity,final_val_loss,final_val_perplexity,tokens_per_sec,seconds,status,error",
  );
  assert.ok(lines[1]!.startsWith("q-r1-s0,q,1,16,0,100,2,2,"));
  assert.match(csv, /"q,v",1,16,1,100,,,,,,1000,1,failed,"bad, ""quoted""\nthing"/);
});

test("resultRow reads metrics.jsonl and adapter_config.json: last train loss, best and final eval, tokens/s", () => {
  const dir = tempDir("lora-ts-sweep-row-");
  const recs = [
    { type: "eval", step: 0, loss: 3, perplexity: Math.exp(3), tokens: 10 },
    {
      type: "train",
      step: 1,
      epoch: 0,
      loss: 2.9,
      lr: 1,
      gradNorm: 1,
      tokens: 5,
      tokensPerSec: 50,
      elapsedSec: 0.1,
    },
    { type: "eval", step: 1, loss: 2.5, perplexity: Math.exp(2.5), tokens: 10 },
    {
      type: "train",
      step: 2,
      epoch: 0,
      loss: 2.7,
      lr: 1,
      gradNorm: 1,
      tokens: 5,
      tokensPerSec: 60,
      elapsedSec: 0.2,
    },
    { type: "eval", step: 2, loss: 2.6, perplexity: Math.exp(2.6), tokens: 10 },
  ];
  writeFileSync(join(dir, "metrics.jsonl"), `${recs.map((r) => JSON.stringify(r)).join("\n")}\n`);
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify({ lora_alpha: 32 }));
  const spec: RunSpec = {
    name: "q-r2-s0",
    targets: { label: "q", value: ["q"] },
    r: 2,
    seed: 0,
    trainable: 10,
  };
  const r = resultRow(spec, { name: spec.name, status: "done", seconds: 3 }, dir);
  assert.deepEqual(
    [r.alpha, r.final_train_loss, r.best_val_loss, r.final_val_loss, r.tokens_per_sec, r.seconds, r.error],
    [32, 2.7, 2.5, 2.6, 60, 3, null],
  );
  assert.ok(Math.abs(r.best_val_perplexity! - Math.exp(2.5)) < 1e-9);
  const failed = resultRow(spec, { name: spec.name, status: "failed", seconds: 1, error: "boom" }, dir);
  assert.deepEqual(
    [failed.status, failed.error, failed.final_val_loss, failed.alpha],
    ["failed", "boom", null, null],
  );
});

test("svgSeriesChart with logX: ticks at 1, 2, 5 × 10^k, points placed by log10(x), one group per series", () => {
  assert.deepEqual(logTicks(1, 64).ticks, [1, 2, 5, 10, 20, 50]);
  assert.deepEqual(logTicks(1000, 1e7).ticks, [1000, 10000, 100000, 1000000, 10000000]);
  assert.equal(compactNumber(20000), "20k");
  assert.equal(compactNumber(1500000), "1.5M");
  const svg = svgSeriesChart(
    [
      { label: "q", points: [1, 8, 64].map((x) => ({ x, y: 1 })) },
      {
        label: "q<v>",
        points: [
          { x: 2, y: 2 },
          { x: 0, y: 3 },
        ],
      },
    ],
    { xLabel: "r", yLabel: "validation loss", logX: true },
  );
  assert.equal((svg.match(/<g class="series"/g) ?? []).length, 2);
  assert.match(svg, /data-label="q&#60;v&#62;"/);
  assert.match(svg, /r \(log scale\)/);
  const cx = [...svg.matchAll(/<circle cx="([\d.]+)"[^>]*><title>q: /g)].map((m) => Number(m[1]));
  assert.equal(cx.length, 3);
  // log spacing: 1→8 is half of 1→64.
  assert.ok(Math.abs(cx[1]! - cx[0]! - (cx[2]! - cx[0]!) / 2) < 0.05);
  // x = 0 cannot sit on a log axis: left out.
  assert.equal((svg.match(/<title>q&#60;v&#62;: /g) ?? []).length, 1);
});

test("report.html: the paper's table with the best cell marked, both charts, a loss curve per run; the terminal tables", () => {
  const html = sweepReportHtml(rows, new Map(), { title: "t" });
  assert.match(html, /<table id="paper-table"/);
  assert.match(html, /<th scope="col">q,v<\/th>/);
  assert.match(html, /<td class="best"[^>]*>1\.400 ± 0\.000 ★<\/td>/);
  assert.match(html, /<figure id="chart-r">\n<svg/);
  assert.match(html, /<figure id="chart-params">\n<svg/);
  assert.equal((html.match(/<figure class="run">/g) ?? []).length, rows.length);
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/);
  const summary = summaryTable(rows);
  assert.match(summary, /r=8 +1\.600 ± 0\.141 +1\.400 ± 0\.000 \*/);
  assert.match(summary, /1 of 8 runs failed/);
  // Budget mode (Table 5): one row, each target set at its own r.
  const budgetRows = [row("q", 8, 0, 1.5), row("q,v", 4, 0, 1.3), row("q,v", 4, 1, 1.5)];
  assert.deepEqual(summaryTable(budgetRows, 800).split("\n").slice(1), [
    "                     q                   q,v",
    "budget 800  r=8: 1.500  r=4: 1.400 ± 0.141 *",
  ]);
  assert.match(
    sweepReportHtml(budgetRows, new Map(), { title: "t", budget: 800 }),
    /<th scope="row">budget 800<\/th><td[^>]*>r=8: 1\.500<\/td><td class="best"[^>]*>r=4: 1\.400 ± 0\.141 ★<\/td><\/tr>/,
  );
  const plan = planTable([
    { name: "a", targets: { label: "q", value: ["q"] }, r: 4, seed: 0, trainable: 400 },
    { name: "b", targets: { label: "q", value: ["q"] }, r: 4, seed: 1, trainable: 400 },
    { name: "c", targets: { label: "x", value: ["x"] }, r: 4, seed: 0, trainable: null },
  ]);
  assert.deepEqual(plan.split("\n"), [
    "targets  r              trainable  seeds",
    "q        4                    400      2",
    "x        4  — (selects no module)      1",
  ]);
});
