/**
 * `lora-ts train --gradient-checkpointing` (and `gradient_checkpointing: true` in a --config file)
 * recomputes each layer in the backward pass and trains exactly as without: on the embedded default
 * model, with LoRA dropout on (the same masks per step), the two steps' losses
 * match the run without the flag, and the session it announces has more nodes (the recomputation).
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/shared.js";
import { tempDir } from "../models/fixtures.js";

const MODEL = join(REPO_ROOT, "models/default");
const DATA = join(MODEL, "data/persona.jsonl");

function run(...extra: string[]) {
  const out = join(tempDir(), "run");
  const r = runCli([
    "train",
    ...["--model", MODEL, "--data", DATA, "--out", out, "--max-steps", "2"],
    ...["--target", "all-linear", "--dropout", "0.1", "--no-report", ...extra],
  ]);
  assert.equal(r.code, 0, r.stderr);
  const nodes = /creating the onnxruntime session \(([\d,]+) graph nodes\)/.exec(r.stderr);
  assert.ok(nodes, r.stderr);
  const losses = readFileSync(join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { type: string; loss: number })
    .filter((m) => m.type === "train")
    .map((m) => m.loss);
  return { losses, nodes: Number(nodes[1]!.replaceAll(",", "")) };
}

test("train --gradient-checkpointing: the same losses as without, from the flag or the config file", () => {
  const plain = run();
  const flag = run("--gradient-checkpointing");
  const config = join(tempDir(), "train.yaml");
  writeFileSync(config, "gradient_checkpointing: true\n");
  const fromFile = run("--config", config);
  assert.equal(plain.losses.length, 2);
  for (const other of [flag, fromFile]) {
    assert.equal(other.losses.length, 2);
    other.losses.forEach((l, i) => {
      assert.ok(
        Math.abs(l - plain.losses[i]!) <= 1e-6 * plain.losses[i]!,
        `step ${i + 1}: ${l} vs ${plain.losses[i]}`,
      );
    });
    assert.ok(other.nodes > 1.3 * plain.nodes, `${other.nodes} graph nodes, ${plain.nodes} without`);
  }
});
