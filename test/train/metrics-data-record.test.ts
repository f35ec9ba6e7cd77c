/** metrics.jsonl's data record: written first, read back, replaced on resume, a torn line still skipped. */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { DataSummary } from "../../src/data/examples.js";
import type { StepMetrics } from "../../src/train/events.js";
import {
  dataRecord,
  metricsLog,
  readMetrics,
  readMetricsRecords,
  runMetricsLog,
} from "../../src/train/metrics-log.js";
import { tempDir } from "../models/fixtures.js";

const summary: DataSummary = {
  rows: 10,
  examples: 7,
  truncated: 4,
  dropped: 3,
  trainedTokens: 99,
  maxLength: 16,
  droppedByTruncation: 2,
  path: "d.jsonl",
};
const step = (s: number): StepMetrics => ({
  type: "train",
  step: s,
  epoch: 0,
  loss: 1,
  lr: 1e-4,
  gradNorm: 1,
  tokens: 8,
  tokensPerSec: 1,
  elapsedSec: s,
});

test("the data record says what became of the rows, and comes first in metrics.jsonl", () => {
  assert.deepEqual(dataRecord(summary, "train", { tokens: 120, seconds: 1.5, workers: 2 }), {
    type: "data",
    role: "train",
    path: "d.jsonl",
    rows: {
      read: 10,
      kept: 7,
      truncated: 4,
      dropped: { total: 3, nothingLeftAfterTruncation: 2, noTokenToTrain: 1 },
    },
    examples: 7,
    trainedTokens: 99,
    maxLength: 16,
    tokens: 120,
    seconds: 1.5,
    workers: 2,
  });
  const dir = tempDir();
  const log = runMetricsLog(dir);
  log.onData!(summary, "train");
  log.onData!({ ...summary, path: "v.jsonl" }, "val");
  log.onStart!({ totalSteps: 2, startStep: 0, trainableParams: 1, totalParams: 2, mode: "lora" });
  log.onStep!(step(1));
  log.onStep!(step(2));
  log.close();
  const path = join(dir, "metrics.jsonl");
  const records = readMetricsRecords(path);
  assert.deepEqual(
    records.map((r) => (r.type === "data" ? `data ${r.role}` : `${r.type} ${r.step}`)),
    ["data train", "data val", "train 1", "train 2"],
  );
  assert.deepEqual(
    readMetrics(path).map((m) => m.step),
    [1, 2],
  );
  // A torn last line is still skipped; a resumed log puts this run's data records first, once.
  writeFileSync(path, `${readFileSync(path, "utf8")}{"type":"train","st`);
  assert.equal(readMetricsRecords(path).length, 4);
  metricsLog(path, { resumeFromStep: 1, data: [dataRecord(summary, "train")] }).close();
  assert.deepEqual(
    readMetricsRecords(path).map((r) => r.type),
    ["data", "train"],
  );
  // A record of another kind in the middle is still an error naming the line.
  writeFileSync(path, '{"type":"data","role":"test","rows":{}}\n{"type":"train","step":1}\n');
  assert.throws(() => readMetrics(path), /metrics\.jsonl: line 1: not a metrics record/);
});
