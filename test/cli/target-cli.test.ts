/**
 * `train --target` in its three documented forms, from the command line and from a YAML config: a list
 * of module names, "all-linear", and a full-match regex over module paths (issue #12 item 7: a regex
 * used to be split on commas into names and failed). Each run's adapter must adapt exactly the modules
 * the form selects.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { loadAdapter } from "../../src/lora/adapter-files.js";
import { runTrain } from "../helpers/cli.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

const model = tinyModel("llama", 21);
const data = wordData(6);

/** Trains one step with `args` and returns the adapted module paths and the saved target_modules. */
function adapted(args: string[]): { paths: string[]; targetModules: unknown } {
  const out = join(tempDir(), "run");
  const r = runTrain(model, data, out, "--max-steps", "1", ...args);
  assert.equal(r.code, 0, r.stderr);
  const adapter = loadAdapter(out);
  const paths = [...adapter.tensors.keys()]
    .filter((k) => k.endsWith(".lora_A.weight"))
    .map((k) => k.replace(/^base_model\.model\./, "").replace(/\.lora_A\.weight$/, ""))
    .sort();
  return { paths, targetModules: adapter.config.target_modules };
}

function yamlConfig(target: string): string {
  const file = join(tempDir(), "train.yaml");
  writeFileSync(file, `target: ${target}\n`);
  return file;
}

const LAYERS = [0, 1];
const attn = (names: string[]) =>
  LAYERS.flatMap((l) => names.map((n) => `model.layers.${l}.self_attn.${n}`)).sort();

test("--target names, all-linear and a regex select their modules, from the CLI and from YAML", () => {
  const names = adapted(["--target", "q_proj,v_proj"]);
  assert.deepEqual(names.paths, attn(["q_proj", "v_proj"]));
  assert.deepEqual(names.targetModules, ["q_proj", "v_proj"]);

  const all = adapted(["--target", "all-linear"]);
  const mlp = LAYERS.flatMap((l) =>
    ["down_proj", "gate_proj", "up_proj"].map((n) => `model.layers.${l}.mlp.${n}`),
  );
  assert.deepEqual(all.paths, [...attn(["k_proj", "o_proj", "q_proj", "v_proj"]), ...mlp].sort());

  // A full match over paths: layer 1's q and v only (a name list cannot say "layer 1").
  const regex = String.raw`model\.layers\.1\.self_attn\.(q|v)_proj`;
  const r = adapted(["--target", regex]);
  assert.deepEqual(r.paths, ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"]);
  assert.equal(r.targetModules, regex, "saved as PEFT's regex string");

  const fromYaml = adapted(["--config", yamlConfig(`'${String.raw`.*\.(k|o)_proj`}'`)]);
  assert.deepEqual(fromYaml.paths, attn(["k_proj", "o_proj"]));
  const listYaml = adapted(["--config", yamlConfig("[up_proj, down_proj]")]);
  assert.deepEqual(
    listYaml.paths,
    LAYERS.flatMap((l) => [`model.layers.${l}.mlp.down_proj`, `model.layers.${l}.mlp.up_proj`]).sort(),
  );
  const namesYaml = adapted(["--config", yamlConfig("q_proj,o_proj")]);
  assert.deepEqual(namesYaml.paths, attn(["o_proj", "q_proj"]));
});

test("a --target regex that matches no module is a one-line error naming it", () => {
  const r = runTrain(model, data, join(tempDir(), "run"), "--target", "nothing_(here)");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*regex "nothing_\(here\)" matches no module of the model .*\n$/);
});
