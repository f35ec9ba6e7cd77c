import assert from "node:assert/strict";
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Metrics } from "../../src/train/events.js";
import { metricsLog, readMetrics, runMetricsLog } from "../../src/train/metrics-log.js";

function records(from: number, to: number): Metrics[] {
  const out: Metrics[] = [];
  for (let s = from; s <= to; s++) {
    out.push({
      type: "train",
      step: s,
      epoch: 0,
      loss: 3 / s,
      lr: 1e-3,
      gradNorm: 0.5,
      tokens: 64,
      tokensPerSec: 100,
      elapsedSec: s,
    });
    if (s % 3 === 0)
      out.push({ type: "eval", step: s, loss: 2 / s, perplexity: Math.exp(2 / s), tokens: 10 });
  }
  return out;
}

function feed(log: ReturnType<typeof metricsLog>, ms: Metrics[]): void {
  for (const m of ms) {
    if (m.type === "train") log.onStep?.(m);
    else log.onEval?.(m);
  }
}

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "lora-ts-metrics-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("one JSON object per line, read back as written", () => {
  withDir((dir) => {
    const path = join(dir, "sub", "metrics.jsonl");
    const log = metricsLog(path);
    feed(log, records(1, 10));
    log.close();
    const lines = readFileSync(path, "utf8").split("\n");
    assert.equal(lines.at(-1), "");
    assert.equal(lines.length - 1, 10 + 3);
    assert.deepEqual(JSON.parse(lines[0]!), records(1, 1)[0]);
    assert.deepEqual(readMetrics(path), records(1, 10));
  });
});

test("resume keeps records up to the step, atomically, then appends", () => {
  withDir((dir) => {
    const path = join(dir, "metrics.jsonl");
    const first = metricsLog(path);
    feed(first, records(1, 8)); // the run got to step 8; last checkpoint at step 6
    first.onEnd?.({} as never);
    const resumed = metricsLog(path, { resumeFromStep: 6 });
    assert.deepEqual(readMetrics(path), records(1, 6));
    feed(resumed, records(7, 10));
    resumed.close();
    assert.deepEqual(readMetrics(path), records(1, 10));
    assert.deepEqual(readdirSync(dir), ["metrics.jsonl"], "no temporary files left");
  });
});

test("a torn last line is skipped (and dropped on resume); a bad middle line is an error", () => {
  withDir((dir) => {
    const path = join(dir, "metrics.jsonl");
    const log = metricsLog(path);
    feed(log, records(1, 4));
    log.close();
    appendFileSync(path, '{"type":"train","step":5,"epo');
    assert.deepEqual(readMetrics(path), records(1, 4));
    const resumed = metricsLog(path, { resumeFromStep: 10 });
    feed(resumed, records(5, 5));
    resumed.close();
    assert.deepEqual(readMetrics(path), records(1, 5));

    const bad = join(dir, "bad.jsonl");
    writeFileSync(
      bad,
      `${JSON.stringify(records(1, 1)[0])}\nnot json\n${JSON.stringify(records(2, 2)[0])}\n`,
    );
    assert.throws(() => readMetrics(bad), /bad\.jsonl: line 2/);
    assert.throws(() => readMetrics(join(dir, "missing.jsonl")), /missing\.jsonl/);
  });
});

test("a fresh run starts an empty log; resume without a file starts empty too", () => {
  withDir((dir) => {
    const path = join(dir, "metrics.jsonl");
    const a = metricsLog(path);
    feed(a, records(1, 3));
    a.close();
    const b = metricsLog(path);
    b.close();
    assert.deepEqual(readMetrics(path), []);
    const other = join(dir, "other.jsonl");
    const c = metricsLog(other, { resumeFromStep: 4 });
    feed(c, records(5, 5));
    c.close();
    c.close(); // idempotent
    assert.deepEqual(readMetrics(other), records(5, 5));
  });
});

test("runMetricsLog: nothing touched before onStart; a fresh run starts empty, a resumed one keeps steps <= its start", () => {
  withDir((dir) => {
    const path = join(dir, "metrics.jsonl");
    const old = metricsLog(path);
    const eval0: Metrics = { type: "eval", step: 0, loss: 2, perplexity: Math.exp(2), tokens: 10 };
    const from0 = (to: number) => [eval0, ...records(1, to)];
    feed(old, from0(8)); // an old run, with its step-0 eval
    old.close();
    const before = readFileSync(path, "utf8");
    const start = { totalSteps: 10, trainableParams: 1, totalParams: 2, mode: "lora" as const };

    const failed = runMetricsLog(dir); // a run that fails before it starts
    failed.close();
    assert.equal(readFileSync(path, "utf8"), before, "a run that never started left the log as it was");

    const resumed = runMetricsLog(dir);
    resumed.onStart?.({ ...start, startStep: 6, outDir: dir });
    assert.deepEqual(readMetrics(path), from0(6));
    feed(resumed, records(7, 10));
    resumed.onEnd?.({} as never);
    assert.deepEqual(readMetrics(path), from0(10));

    const fresh = runMetricsLog(dir);
    fresh.onStart?.({ ...start, startStep: 0, outDir: dir });
    feed(fresh, from0(2));
    fresh.close();
    assert.deepEqual(readMetrics(path), from0(2), "no record of the old runs is kept");

    // The trainer's folder (a temporary one while --force replaces the output) wins over the fallback.
    const work = join(dir, "work");
    mkdirSync(work);
    const elsewhere = runMetricsLog(dir);
    elsewhere.onStart?.({ ...start, startStep: 0, outDir: work });
    feed(elsewhere, records(1, 1));
    elsewhere.close();
    assert.deepEqual(readMetrics(join(work, "metrics.jsonl")), records(1, 1));
    assert.deepEqual(readMetrics(path), from0(2));
    assert.throws(() => runMetricsLog(dir).onStep?.(records(1, 1)[0] as never), /before the run started/);
  });
});
