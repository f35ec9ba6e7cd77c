/** PiSSA training: the residual base + adapter starts equal to the base, and the saved (converted)
 *  adapter applied to the ORIGINAL base scores exactly what training measured. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadAdapter } from "../../src/lora/adapter-files.js";
import { evaluate } from "../../src/train/evaluate.js";
import { train } from "../../src/train/trainer.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

test("PiSSA: starts at the base model; the saved rank-2r adapter reproduces the trained model on the original base", async () => {
  const model = tinyModel("llama", 4);
  const data = wordData(8);

  const out = tempDir();
  const summary = await train({
    model,
    data,
    valData: data,
    out,
    init: "pissa",
    r: 4,
    alpha: 8,
    dropout: 0,
    targets: ["q_proj", "v_proj"],
    lr: 1e-2,
    maxSteps: 4,
    batchSize: 4,
    evalEvery: 4,
    threads: 1,
  });
  const base = await evaluate({ model, data });
  assert.ok(
    Math.abs(summary.firstEvalLoss! - base.loss) < 1e-4,
    `start ${summary.firstEvalLoss} vs base ${base.loss}`,
  );
  assert.ok(Math.abs(summary.finalEvalLoss! - summary.firstEvalLoss!) > 1e-3, "training changed the model");

  const saved = loadAdapter(out);
  assert.equal(saved.config.r, 8);
  assert.equal(saved.config.init_lora_weights, true);
  assert.deepEqual(
    saved.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")!.shape,
    [8, 32],
  );
  const viaSaved = await evaluate({ model, adapter: out, data });
  assert.ok(
    Math.abs(viaSaved.loss - summary.finalEvalLoss!) < 1e-4,
    `${viaSaved.loss} vs ${summary.finalEvalLoss}`,
  );
});
