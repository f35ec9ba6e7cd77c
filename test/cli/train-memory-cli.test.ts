/**
 * The memory check from the CLI (#12 "Memory"): a run whose estimated peak is above the machine's
 * available memory is refused before anything is built or written, in one line that gives the
 * estimate and what to lower; a config file's `memory_check: false` reaches the trainer.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { flagsToConfig, toTrainOptions } from "../../src/cli/train-config.js";
import { runTrain } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/shared.js";
import { tempDir } from "../models/fixtures.js";

const MODEL = join(REPO_ROOT, "models/default");
const DATA = join(MODEL, "data/persona.jsonl");

test("train: a run estimated above the available memory is refused in one line before any work", () => {
  const out = join(tempDir(), "run");
  // A million sequences per micro-batch: terabytes of activations on any machine.
  const r = runTrain(MODEL, DATA, out, "--batch-size", "1000000", "--max-length", "64");
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^error: train: this run needs about [\d.]+ GiB \(estimate: weights [\d.]+, optimizer [\d.]+, activations [\d.]+, attention [\d.]+, head [\d.]+, runtime [\d.]+\) but [\d.]+ GiB is available; lower --batch-size \(1000000; \d+ would fit\)/,
  );
  assert.match(r.stderr, /--no-memory-check skips this check\)\n$/);
  assert.equal(r.stderr.split("\n").length, 2, "one line");
  assert.equal(existsSync(out), false, "nothing written");
});

test("train config: --no-memory-check and memory_check: false reach the trainer; the flag's default does not override the file", () => {
  const base = { model: "m", data: "d", out: "o" };
  assert.equal(toTrainOptions({ ...base, ...flagsToConfig({ memoryCheck: false }) }).memoryCheck, false);
  // Commander gives a --no- flag's default (true) when the flag is absent: the file's false stands.
  const fromFile = { ...base, memory_check: false };
  assert.equal(toTrainOptions({ ...fromFile, ...flagsToConfig({ memoryCheck: true }) }).memoryCheck, false);
  assert.equal(toTrainOptions({ ...base, ...flagsToConfig({ memoryCheck: true }) }).memoryCheck, undefined);
});

test("train prints its estimated peak memory, by part, against the memory available, before the run", () => {
  const out = join(tempDir(), "run");
  const r = runTrain(
    MODEL,
    DATA,
    out,
    "--max-steps",
    "1",
    "--batch-size",
    "2",
    "--max-length",
    "32",
    "--no-memory-check",
  );
  assert.equal(r.code, 0, r.stderr);
  const line = r.stdout.split("\n").find((l) => l.startsWith("memory: "));
  assert.match(
    line ?? "",
    /^memory: about [\d.]+ GiB \(weights [\d.]+, optimizer [\d.]+, activations [\d.]+, attention [\d.]+, head [\d.]+, runtime [\d.]+\) of [\d.]+ GiB available$/,
  );
  // Printed before the run, right after what was made of the data (and the lines that say the data
  // is being prepared).
  assert.deepEqual(
    r.stdout
      .split("\n")
      .filter((l) => !/^prepar(ing|ed) data /.test(l))
      .slice(0, 2)
      .map((l) => l.split(":")[0]),
    ["data", "memory"],
  );
});
