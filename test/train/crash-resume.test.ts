/**
 * Crash and resume (#12 "Prove it"), the CI-sized run: 3 SIGKILLs of a short `train --save-every 2`
 * on the embedded default model (one during a checkpoint write), each followed by --resume; the final
 * adapter is byte-identical to an uninterrupted run's and every checkpoint left reads back.
 * `npm run crash-test` runs the same harness with 20 kills.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { cleanUp, crashAndResume } from "./crash-harness.js";

/** A tiny run: 8 steps of 2 sequences of at most 32 tokens, a checkpoint every 2 steps, 2 kept. */
export const CRASH_TRAIN_ARGS = [
  ...["--model", DEFAULT_MODEL_DIR, "--data", join(DEFAULT_MODEL_DIR, "data/persona.jsonl")],
  ...["--max-steps", "8", "--max-length", "32", "--batch-size", "2"],
  ...["--save-every", "2", "--save-total-limit", "2", "--threads", "1"],
];

test("3 SIGKILLs (one in a checkpoint write), each resumed: the adapter is byte-identical, no checkpoint unreadable", {
  skip: existsSync(join(DEFAULT_MODEL_DIR, "model.safetensors")) ? false : "models/default is not built",
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "lora-ts-crash-"));
  const lines: string[] = [];
  const r = await crashAndResume({
    args: CRASH_TRAIN_ARGS,
    dir,
    kills: 3,
    seed: 12,
    log: (l) => lines.push(l),
  });
  const story = lines.join("\n");
  assert.deepEqual(r.failures, [], story);
  assert.equal(r.kills, 3, story);
  assert.ok(r.killsDuringCheckpointWrite >= 1, story);
  assert.ok(r.resumes >= 1, story);
  cleanUp(dir);
});
