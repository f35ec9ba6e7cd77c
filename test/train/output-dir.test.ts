/**
 * `train --out`: nothing in it is touched until the inputs are checked; a non-empty folder is refused
 * unless --resume or --force; --force replaces the folder as a whole, only when the new run succeeds;
 * a fresh run starts a fresh metrics.jsonl and a resumed one keeps the records up to its checkpoint.
 */
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { Metrics } from "../../src/train/events.js";
import { readMetrics } from "../../src/train/metrics-log.js";
import { type TrainOptions, train } from "../../src/train/trainer.js";
import { runCli, runTrain } from "../helpers/cli.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const model = tinyModel("llama", 3, { num_key_value_heads: 2 });
const data = wordData(24);

/** Every file under `dir` (relative path -> contents); folders as "path/". */
function snapshot(dir: string, prefix = ""): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      out.set(`${prefix}${name}/`, "");
      for (const [k, v] of snapshot(p, `${prefix}${name}/`)) out.set(k, v);
    } else out.set(`${prefix}${name}`, readFileSync(p, "latin1"));
  }
  return out;
}

const step = (s: number): Metrics => ({
  type: "train",
  step: s,
  epoch: 0,
  loss: 5 - s / 10,
  lr: 1e-3,
  gradNorm: 1,
  tokens: 10,
  tokensPerSec: 100,
  elapsedSec: s,
});
const evalAt = (s: number): Metrics => ({
  type: "eval",
  step: s,
  loss: 4,
  perplexity: Math.exp(4),
  tokens: 9,
});

/** A previous run's folder, inside a parent of its own: `{parent}/run`. */
function previousRun(): { parent: string; run: string } {
  const parent = tempDir("lora-ts-out-");
  const run = join(parent, "run");
  mkdirSync(join(run, "checkpoint-2"), { recursive: true });
  const records = [evalAt(0), step(1), step(2), evalAt(2), step(3), step(4), evalAt(4)];
  writeFileSync(join(run, "metrics.jsonl"), records.map((m) => `${JSON.stringify(m)}\n`).join(""));
  writeFileSync(join(run, "checkpoint-2", "trainer_state.json"), "{}\n");
  writeFileSync(join(run, "adapter_config.json"), '{"old": true}\n');
  writeFileSync(join(run, "report.html"), "<p>old report</p>\n");
  writeFileSync(join(run, "stale.txt"), "from the old run\n");
  return { parent, run };
}

const QUIET = ["--no-progress", "--no-report"];

test("a train that fails on its inputs leaves --out as it was (metrics.jsonl included), whatever the flags", () => {
  const empty = join(tempDir(), "EMPTY.jsonl");
  writeFileSync(empty, "");
  for (const [input, flags, why] of [
    [empty, [], /--out .*run: is not empty/],
    [empty, ["--resume"], /EMPTY\.jsonl/],
    [empty, ["--force"], /EMPTY\.jsonl/],
    [data, ["--force", "--target", "no_such_module"], /no_such_module/],
  ] as const) {
    const { parent, run } = previousRun();
    const before = snapshot(run);
    const r = runCli(["train", "--model", model, "--data", input, "--out", run, ...flags, ...QUIET]);
    assert.equal(r.code, 1, `${flags.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /^error: [^\n]*\n$/, `${flags.join(" ")}: one line`);
    assert.match(r.stderr, why);
    assert.deepEqual(snapshot(run), before, `${flags.join(" ")}: --out changed`);
    assert.deepEqual(readdirSync(parent), ["run"], `${flags.join(" ")}: files left beside --out`);
  }
});

test("a non-empty --out is refused without --resume or --force, in one line, and left as it was", () => {
  const { parent, run } = previousRun();
  const before = snapshot(run);
  const r = runCli(["train", "--model", model, "--data", data, "--out", run, "--max-steps", "1", ...QUIET]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(
    r.stderr,
    `error: --out ${run}: is not empty (use --force to replace it, or --resume to continue)\n`,
  );
  assert.deepEqual(snapshot(run), before);
  assert.deepEqual(readdirSync(parent), ["run"]);
  const both = runCli(["train", "--model", model, "--data", data, "--out", run, "--resume", "--force"]);
  assert.equal(both.code, 1);
  assert.match(both.stderr, /^error: train: give --resume or --force, not both\n$/);
  assert.deepEqual(snapshot(run), before);
  // An existing empty folder is a new one.
  const emptyOut = tempDir();
  const ok = runTrain(model, data, emptyOut, "--max-steps", "1");
  assert.equal(ok.code, 0, ok.stderr);
});

test("--force replaces --out as a whole: no stale file, a fresh metrics.jsonl with one step-0 eval", () => {
  const { parent, run } = previousRun();
  const args = ["--model", model, "--data", data, "--out", run, "--max-steps", "3", "--batch-size", "4"];
  const evals = ["--val-fraction", "0.25", "--eval-every", "1", "--save-every", "2"];
  const r = runCli(["train", ...args, ...evals, "--force", ...QUIET]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(run).sort(), [
    "adapter_config.json",
    "adapter_model.safetensors",
    "checkpoint-2",
    "metrics.jsonl",
  ]);
  assert.deepEqual(readdirSync(parent), ["run"], "no temporary folder left beside --out");
  const records = readMetrics(join(run, "metrics.jsonl")).map((m) => `${m.type}@${m.step}`);
  assert.deepEqual(records, ["eval@0", "train@1", "eval@1", "train@2", "eval@2", "train@3", "eval@3"]);
  assert.notEqual(JSON.parse(readFileSync(join(run, "adapter_config.json"), "utf8")).old, true);

  // A second --force run into the same folder: still one step-0 eval, nothing accumulates.
  const again = runCli(["train", ...args, ...evals, "--force", ...QUIET]);
  assert.equal(again.code, 0, again.stderr);
  const second = readMetrics(join(run, "metrics.jsonl")).map((m) => `${m.type}@${m.step}`);
  assert.deepEqual(second, records);

  // Resuming keeps the records up to the checkpoint (step 2) and replaces the later ones.
  const resumed = runCli(["train", ...args, ...evals, "--resume", ...QUIET]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const third = readMetrics(join(run, "metrics.jsonl")).map((m) => `${m.type}@${m.step}`);
  assert.deepEqual(third, records);
});

test("a --force run that fails after it started (NaN) leaves the previous run as it was, and nothing beside it", () => {
  const { parent, run } = previousRun();
  const before = snapshot(run);
  const r = runCli([
    "train",
    "--model",
    model,
    "--data",
    data,
    "--out",
    run,
    "--force",
    "--lr",
    "1e20",
    "--max-grad-norm",
    "1e30",
    "--max-steps",
    "6",
    "--batch-size",
    "4",
    "--save-every",
    "1",
    "--target",
    "all-linear",
    ...QUIET,
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /^error: the loss became NaN at step \d+ .*training stopped\. .*run is left as it was\n$/,
  );
  assert.deepEqual(snapshot(run), before);
  assert.deepEqual(readdirSync(parent), ["run"]);
});

test("library: train() refuses a non-empty out; force replaces it", async () => {
  const { parent, run } = previousRun();
  const opts = { model, data, out: run, maxSteps: 1, batchSize: 4, threads: 1 } as TrainOptions;
  await assert.rejects(train(opts), /--out .*run: is not empty \(use --force/);
  const summary = await train({ ...opts, force: true } as TrainOptions);
  assert.equal(summary.outDir, run);
  assert.deepEqual(readdirSync(run).sort(), ["adapter_config.json", "adapter_model.safetensors"]);
  assert.deepEqual(readdirSync(parent), ["run"]);
});

test("demo --out: a non-empty folder is refused before anything runs, unless --force", () => {
  const { parent, run } = previousRun();
  const before = snapshot(run);
  const r = runCli(["demo", "--out", run]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, `error: --out ${run}: is not empty (use --force to replace it)\n`);
  assert.equal(r.stdout, "", "nothing ran");
  assert.deepEqual(snapshot(run), before);
  assert.deepEqual(readdirSync(parent), ["run"]);
});
