/**
 * `train` over a prepared data set (issue #18): the temporary prepared folder goes away whether the run
 * succeeds or fails, the rows' accounting is the first record of metrics.jsonl, the result does not
 * depend on --data-workers, and preparation prints a start and an end line even with --no-progress.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { DataRecord, StepMetrics } from "../../src/train/events.js";
import { readMetrics, readMetricsRecords } from "../../src/train/metrics-log.js";
import { runCli } from "../helpers/cli.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const model = tinyModel("llama", 3, { num_key_value_heads: 2 });

function trainArgs(data: string, out: string, ...extra: string[]): string[] {
  return [
    "train",
    "--model",
    model,
    "--data",
    data,
    "--out",
    out,
    "--max-steps",
    "3",
    "--batch-size",
    "2",
    ...extra,
  ];
}

test("train --no-data-cache: prepared data in a temporary folder that is removed after the run and after a failure", () => {
  const tmp = mkdtempSync(join(tmpdir(), "lora-ts-tmpdir-"));
  const env = { TMPDIR: tmp, TMP: tmp, TEMP: tmp };
  const data = wordData(24);
  const out = join(tempDir(), "run");
  const ok = runCli(
    [...trainArgs(data, out), "--no-progress", "--no-report", "--data-workers", "2", "--no-data-cache"],
    env,
  );
  assert.equal(ok.code, 0, ok.stderr);
  const prepared = () => readdirSync(tmp).filter((f) => f.startsWith("lora-ts-data-"));
  assert.deepEqual(prepared(), [], "no prepared folder left in the temporary folder");
  // --no-progress: still a line when preparation starts and when it ends (stdout, beside "data:").
  // (A file this small is prepared in the main thread, whatever --data-workers says.)
  assert.match(ok.stdout, /^preparing data \S+ \([\d.]+ k?B, 1 thread\)\.\.\.$/m);
  assert.match(ok.stdout, /^prepared data \S+: 24 rows, \d+ tokens in \d+s \(.* tok\/s, 1 thread\)$/m);
  assert.match(ok.stdout, /^data: 24 rows -> 24 examples$/m);

  // The rows' accounting is the first record of metrics.jsonl; readMetrics still gives the steps.
  const records = readMetricsRecords(join(out, "metrics.jsonl"));
  const first = records[0] as DataRecord;
  assert.equal(first.type, "data");
  assert.equal(first.role, "train");
  assert.deepEqual(first.rows, {
    read: 24,
    kept: 24,
    truncated: 0,
    dropped: { total: 0, nothingLeftAfterTruncation: 0, noTokenToTrain: 0 },
  });
  assert.equal(first.workers, 1);
  assert.ok((first.tokens ?? 0) > 0);
  const steps = readMetrics(join(out, "metrics.jsonl"));
  assert.deepEqual(
    steps.map((m) => m.step),
    [1, 2, 3],
  );

  // A bad line late in the file: the run fails with the line, and the prepared folder is gone too.
  const bad = join(tempDir(), "bad.jsonl");
  writeFileSync(bad, `${readFileSync(data, "utf8").trimEnd()}\n{"text": oops}\n`);
  const failed = runCli(
    [...trainArgs(bad, join(tempDir(), "run2")), "--no-progress", "--no-report", "--no-data-cache"],
    env,
  );
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /bad\.jsonl: line 25: invalid JSON/);
  assert.deepEqual(prepared(), [], "nor after a failure");
});

test("train: the same losses with 1 and 3 data workers; off a terminal, progress says when preparation starts and ends", () => {
  const data = wordData(8000); // over 512 kB: chunks for 3 workers
  const losses = (workers: string) => {
    const out = join(tempDir(), `run-${workers}`);
    // Each run its own data cache: the second would otherwise read the first one's prepared folder.
    const r = runCli([...trainArgs(data, out), "--no-report", "--data-workers", workers], {
      LORA_TS_PROGRESS_SECONDS: "0",
      LORA_TS_CACHE: tempDir(),
    });
    assert.equal(r.code, 0, r.stderr);
    if (workers === "3") {
      assert.match(r.stderr, /^preparing data \S+ \(.*, 3 threads\)\.\.\.$/m);
      assert.match(r.stderr, /^prepared data \S+: 8000 rows, .*, 3 threads\)$/m);
    }
    return readMetrics(join(out, "metrics.jsonl")).map((m) => (m as StepMetrics).loss);
  };
  assert.deepEqual(losses("1"), losses("3"));
});
