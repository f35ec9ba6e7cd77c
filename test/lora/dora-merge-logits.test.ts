/**
 * Issue #19's acceptance check: a DoRA adapter trained by lora-ts, and one written in PEFT's format by
 * an independent tool (test/peers/dora_adapter_writer.py: PyTorch, its own safetensors writer), give
 * the same logits on the real stories260K model applied unmerged (`lora-ts logits --adapter`) as
 * their merged models (`lora-ts merge`, then `lora-ts logits` on the merged folder), within 1e-4.
 *
 * The unmerged path scales each output of W·x + s·B·A·x by m / ‖W + s·B·A‖ inside the graph; the
 * merged one bakes that factor into the weights: two computations of DoRA that share only dora.ts's
 * norm. Each adapter is checked to move the logits far above the tolerance, and the written one's
 * magnitudes are checked to matter (the same A and B as plain LoRA give logits far from it), so the
 * comparison can fail.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { loraKeys, magnitudeKey } from "../../src/lora/adapter.js";
import { loadAdapter, saveAdapter } from "../../src/lora/adapter-files.js";
import { doraFactor } from "../../src/lora/dora.js";
import { openModelDir } from "../../src/models/open-model.js";
import { BIN } from "../helpers/cli.js";
import { needsShared, sharedPath } from "../helpers/shared.js";
import { stories260K } from "../helpers/stories.js";
import { needsTorch, runPeer } from "../helpers/torch.js";
import { tempDir } from "../models/fixtures.js";

const SHARED = needsShared(
  "models/stories260K/stories260K.bin",
  "models/stories260K/tok512.bin",
  "models/stories260K/reference.json",
);
/** lora-ts runs in float32 on both sides; the two paths round differently, far below this. */
const TOL = 1e-4;

function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `lora-ts ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

function logits(model: string, ids: number[], adapter?: string): number[][] {
  const args = ["logits", "--model", model, "--ids", ids.join(","), "--json"];
  if (adapter) args.push("--adapter", adapter);
  return (JSON.parse(cli(args)) as { logits: number[][] }).logits;
}

function maxDiff(a: number[][], b: number[][]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((row, t) => {
    row.forEach((v, i) => {
      m = Math.max(m, Math.abs(v - b[t]![i]!));
    });
  });
  return m;
}

let converted: { dir: string; ids: number[] } | undefined;
/** stories260K converted once, and a real story's first 24 tokens (BOS and greedy ids). */
async function stories(): Promise<{ dir: string; ids: number[] }> {
  if (converted) return converted;
  const dir = await stories260K();
  const ref = JSON.parse(readFileSync(sharedPath("models/stories260K/reference.json"), "utf8")) as {
    greedy_from_bos_200: number[];
  };
  converted = { dir, ids: [1, ...ref.greedy_from_bos_200.slice(0, 23)] };
  return converted;
}

/** Unmerged vs merged logits of `adapter` on `model`; returns the unmerged ones and the base's. */
function unmergedEqualsMerged(name: string, model: string, adapter: string, ids: number[]): number[][] {
  const merged = join(tempDir(), `merged-${name}`);
  cli(["merge", "--model", model, "--adapter", adapter, "--out", merged, "--dtype", "f32"]);
  const unmergedLogits = logits(model, ids, adapter);
  const mergedLogits = logits(merged, ids);
  const effect = maxDiff(unmergedLogits, logits(model, ids));
  const d = maxDiff(unmergedLogits, mergedLogits);
  console.log(
    `${name}: adapter effect ${effect.toFixed(3)}, unmerged vs merged max |diff| ${d.toExponential(2)}`,
  );
  assert.ok(effect > 100 * TOL, `${name}: the adapter changes the logits by only ${effect}`);
  assert.ok(d <= TOL, `${name}: logits --adapter vs the merged model: max |diff| ${d} (tol ${TOL})`);
  return unmergedLogits;
}

test("stories260K: a DoRA adapter written in PEFT's format by an independent tool gives its merged model's logits, within 1e-4", {
  skip: needsTorch || SHARED,
}, async () => {
  const { dir, ids } = await stories();
  const adapter = join(tempDir(), "written");
  const { keys } = runPeer<{ keys: string[] }>("dora_adapter_writer.py", {
    model_dir: dir,
    out: adapter,
    seed: 7,
    r: 4,
    lora_alpha: 6,
    target_modules: ["q_proj", "v_proj", "down_proj", "embed_tokens"],
  });
  assert.ok(keys.includes("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"));
  assert.ok(keys.includes("base_model.model.model.embed_tokens.lora_magnitude_vector"));
  const dora = unmergedEqualsMerged("written", dir, adapter, ids);

  // The magnitudes matter: the same A and B without them (plain LoRA) are far from DoRA's logits.
  const plain = loadAdapter(adapter);
  for (const k of [...plain.tensors.keys()])
    if (k.endsWith(".lora_magnitude_vector")) plain.tensors.delete(k);
  plain.config = { ...plain.config, use_dora: false, raw: { ...plain.config.raw, use_dora: false } };
  const plainDir = join(tempDir(), "written-as-lora");
  saveAdapter(plainDir, plain);
  const gap = maxDiff(dora, logits(dir, ids, plainDir));
  assert.ok(gap > 100 * TOL, `the magnitudes change the logits by only ${gap}`);
});

test("stories260K: a DoRA adapter trained by `lora-ts train --dora` gives its merged model's logits, within 1e-4", {
  skip: SHARED,
}, async () => {
  const { dir, ids } = await stories();
  const data = join(tempDir(), "stories.jsonl");
  const story = "Once upon a time there was a little girl. She liked to play in the park with her dog.";
  writeFileSync(data, `${Array.from({ length: 8 }, () => JSON.stringify({ text: story })).join("\n")}\n`);
  const out = join(tempDir(), "trained");
  // A high learning rate, so that a few steps move the magnitudes and B well away from their start.
  cli([
    "train",
    ...["--model", dir, "--data", data, "--out", out, "--dora", "--r", "4", "--alpha", "8"],
    ...["--target", "q_proj,v_proj,down_proj", "--lr", "3e-2", "--max-steps", "4", "--batch-size", "2"],
    ...["--dropout", "0", "--threads", "1", "--no-progress", "--no-report"],
  ]);
  const adapter = existsSync(join(out, "adapter_config.json")) ? out : join(out, "adapter");
  const trained = loadAdapter(adapter);
  assert.equal(trained.config.use_dora, true);
  // Training moved the magnitudes off the norms they start at (m / n = 1), so the factor is exercised.
  const base = openModelDir(dir);
  try {
    const path = "model.layers.0.self_attn.q_proj";
    const t = (k: string) => trained.tensors.get(k)!;
    const f = doraFactor(
      t(magnitudeKey(path)).data,
      base.weights.readFloat32(`${path}.weight`),
      t(loraKeys(path, "linear").A),
      t(loraKeys(path, "linear").B),
      2,
    );
    const off = Math.max(...f.map((x) => Math.abs(x - 1)));
    assert.ok(off > 1e-3, `${path}: m / n is within ${off} of 1 after training`);
  } finally {
    base.weights.close();
  }
  unmergedEqualsMerged("trained", dir, adapter, ids);
});
