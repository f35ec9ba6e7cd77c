/**
 * --resume with other settings (#12 item 12): a checkpoint records the settings that shape the run
 * (steps, learning rate and schedule, batch, seed, length, data content; the LoRA settings are in its
 * adapter_config.json), and a resume that differs is refused in one line naming each flag, old and
 * new, with nothing in --out touched. Settings that do not change what is computed may differ; a
 * checkpoint from before the record resumes, checked on what it has.
 */
import assert from "node:assert/strict";
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runTrain } from "../helpers/cli.js";
import { fileHashes } from "../helpers/file-hashes.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const model = tinyModel("llama", 3, { num_key_value_heads: 2 });
const FLAGS = ["--max-steps", "6", "--save-every", "2", "--batch-size", "3", "--target", "all-linear"];
const FLAGS_THREADS = [...FLAGS, "--threads", "1"];

/** A finished 6-step run with checkpoints 2 and 4, on its own copy of the data. */
function finishedRun(): { out: string; data: string } {
  const data = join(tempDir(), "data.jsonl");
  copyFileSync(wordData(24), data);
  const out = join(tempDir("lora-ts-resume-"), "run");
  const r = runTrain(model, data, out, ...FLAGS_THREADS);
  assert.equal(r.code, 0, r.stderr);
  return { out, data };
}

function refused(r: { code: number | null; stderr: string }): string {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  return lines[0]!;
}

test("--resume with another --max-steps is refused in one line naming both values; --out is untouched", () => {
  const { out, data } = finishedRun();
  const before = fileHashes(out);
  const line = refused(runTrain(model, data, out, ...FLAGS_THREADS, "--max-steps", "8", "--resume"));
  assert.equal(
    line,
    `error: --resume: ${join(out, "checkpoint-4")} was saved by a run with --max-steps 6; this run says ` +
      "--max-steps 8 (the learning-rate schedule depends on it). Give the same settings, or start a new run with --force.",
  );
  assert.deepEqual(fileHashes(out), before);
});

test("every changed setting is named (LoRA ones from adapter_config.json); --save-every, --threads, --eval-every may change", () => {
  const { out, data } = finishedRun();
  const changed = [
    "--lr",
    "0.01",
    "--batch-size",
    "2",
    "--seed",
    "7",
    "--alpha",
    "32",
    "--packing",
    "--rslora",
  ];
  const line = refused(runTrain(model, data, out, ...FLAGS_THREADS, ...changed, "--resume"));
  assert.match(
    line,
    /was saved by a run with --lr 0\.0002, --batch-size 3, --seed 0, no --packing, --alpha 16, no --rslora; this run says --lr 0\.01, --batch-size 2, --seed 7, --packing, --alpha 32, --rslora\. Give the same settings/,
  );
  const r = runTrain(
    model,
    data,
    out,
    ...FLAGS,
    "--save-every",
    "3",
    "--threads",
    "2",
    "--eval-every",
    "2",
    "--resume",
  );
  assert.equal(r.code, 0, r.stderr);
});

test("the data file's content is compared, not its name", () => {
  const { out, data } = finishedRun();
  const moved = join(tempDir(), "moved.jsonl");
  copyFileSync(data, moved);
  assert.equal(runTrain(model, moved, out, ...FLAGS_THREADS, "--resume").code, 0, "same content, other path");
  appendFileSync(data, `${JSON.stringify({ text: "Once upon a time there was one more row. The end" })}\n`);
  assert.match(
    refused(runTrain(model, data, out, ...FLAGS_THREADS, "--resume")),
    /was saved by a run with --data .*data\.jsonl \(sha256 [0-9a-f]{12}\); this run says --data .*data\.jsonl \(sha256 [0-9a-f]{12}\) \(a different file content\)\./,
  );
});

test("a checkpoint without the settings record (older versions) resumes; its total steps are still checked", () => {
  const { out, data } = finishedRun();
  const adapter = readFileSync(join(out, "adapter_model.safetensors"));
  const statePath = join(out, "checkpoint-4", "trainer_state.json");
  const { settings: _, ...old } = JSON.parse(readFileSync(statePath, "utf8")) as Record<string, unknown>;
  writeFileSync(statePath, JSON.stringify(old));
  assert.match(
    refused(runTrain(model, data, out, ...FLAGS_THREADS, "--max-steps", "8", "--resume")),
    /was saved by a run with 6 steps; this run says --max-steps 8 \(the learning-rate schedule depends on it\)\./,
  );
  const r = runTrain(model, data, out, ...FLAGS_THREADS, "--resume");
  assert.equal(r.code, 0, r.stderr);
  assert.ok(
    readFileSync(join(out, "adapter_model.safetensors")).equals(adapter),
    "steps 5-6 again, the same adapter",
  );
});
