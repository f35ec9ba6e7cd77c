/**
 * --save-total-limit N (#12 item 12, Hugging Face's save_total_limit): after each checkpoint only the
 * newest N are kept; older ones are deleted once the new one is complete. A resume removes the
 * temporary files and folders that a killed checkpoint write left in --out, and nothing else.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { test } from "node:test";
import { checkCheckpoint, listCheckpoints } from "../../src/train/checkpoint.js";
import { checkpointLine } from "../../src/train/progress.js";
import { train } from "../../src/train/trainer.js";
import { runTrain } from "../helpers/cli.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const model = tinyModel("llama", 3, { num_key_value_heads: 2 });
const data = wordData(24);
const FLAGS = ["--max-steps", "9", "--save-every", "2", "--batch-size", "3", "--threads", "1"];
const steps = (out: string) => listCheckpoints(out).map((c) => c.step);

test("--save-total-limit 2 keeps the newest 2; each older one goes only after the new one is complete", async () => {
  const out = join(tempDir("lora-ts-limit-"), "run");
  const seen: string[] = [];
  await train({ model, data, out, maxSteps: 9, saveEvery: 2, saveTotalLimit: 2, batchSize: 3, threads: 1 }, [
    {
      onCheckpoint(dir, step, removed = []) {
        checkCheckpoint(dir);
        for (const r of removed) assert.ok(!existsSync(r), r);
        seen.push(checkpointLine(basename(dir), step, removed));
      },
    },
  ]);
  assert.deepEqual(seen, [
    "checkpoint @ step 2: checkpoint-2",
    "checkpoint @ step 4: checkpoint-4",
    "checkpoint @ step 6: checkpoint-6 (removed checkpoint-2)",
    "checkpoint @ step 8: checkpoint-8 (removed checkpoint-4)",
  ]);
  assert.deepEqual(steps(out), [6, 8]);
  assert.deepEqual(
    readdirSync(out).filter((n) => n.startsWith(".")),
    [],
  );
});

test("the CLI flag and the config key save_total_limit; a bad value is one line", () => {
  const out = join(tempDir("lora-ts-limit-"), "run");
  assert.equal(runTrain(model, data, out, ...FLAGS, "--save-total-limit", "3").code, 0);
  assert.deepEqual(steps(out), [4, 6, 8]);
  const config = join(tempDir(), "train.yaml");
  writeFileSync(config, "save_total_limit: 1\n");
  const out2 = join(tempDir("lora-ts-limit-"), "run");
  assert.equal(runTrain(model, data, out2, ...FLAGS, "--config", config).code, 0);
  assert.deepEqual(steps(out2), [8]);
  const bad = runTrain(model, data, join(tempDir(), "x"), ...FLAGS, "--save-total-limit", "0");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: --save-total-limit: .*\n$/);
});

test("--resume removes what a killed checkpoint write left (temporary names), and nothing else", () => {
  const out = join(tempDir("lora-ts-limit-"), "run");
  assert.equal(runTrain(model, data, out, ...FLAGS).code, 0);
  const stray = [".checkpoint-8.4242.0badc0de.tmp", ".checkpoint-2.4242.12345678.tmp"];
  for (const d of stray) {
    mkdirSync(join(out, d));
    writeFileSync(join(out, d, "adapter_model.safetensors"), "half");
  }
  writeFileSync(join(out, "adapter_model.safetensors.4242.0123456789ab.tmp"), "half"); // writeSafetensors'
  writeFileSync(join(out, ".metrics.jsonl.4242.89abcdef.tmp"), "half"); // writeFileAtomic's
  writeFileSync(join(out, "notes.tmp"), "mine");
  mkdirSync(join(out, ".mine"));
  const r = runTrain(model, data, out, ...FLAGS, "--resume");
  assert.equal(r.code, 0, r.stderr);
  const left = readdirSync(out).sort();
  assert.deepEqual(
    left.filter((n) => n.startsWith(".") || n.endsWith(".tmp")),
    [".mine", "notes.tmp"],
  );
  assert.deepEqual(steps(out), [2, 4, 6, 8]);
});
