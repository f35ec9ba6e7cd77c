import assert from "node:assert/strict";
import { test } from "node:test";
import { makeLoraConfig } from "../../src/lora/config.js";
import { countParams, layerIndexOf, type ModuleInfo, selectTargets } from "../../src/lora/targets.js";
import { LoraTsError } from "../../src/util/errors.js";
import { gpt2Modules, llamaModules } from "./fixtures.js";

const paths = (cfg: Parameters<typeof makeLoraConfig>[0], modules = llamaModules()): string[] =>
  selectTargets(makeLoraConfig(cfg), modules).map((s) => s.path);

test("a list entry matches the exact module name or a .suffix", () => {
  assert.deepEqual(paths({ target_modules: ["q_proj"] }), [
    "model.layers.0.self_attn.q_proj",
    "model.layers.1.self_attn.q_proj",
  ]);
  assert.deepEqual(paths({ target_modules: ["self_attn.q_proj"] }), [
    "model.layers.0.self_attn.q_proj",
    "model.layers.1.self_attn.q_proj",
  ]);
  assert.deepEqual(paths({ target_modules: ["model.layers.1.mlp.up_proj"] }), ["model.layers.1.mlp.up_proj"]);
  // "proj" is not a suffix at a dot boundary of "q_proj".
  assert.throws(() => paths({ target_modules: ["proj"] }), /entry "proj" matches no module/);
  // GPT-2: "c_proj" matches both attn.c_proj and mlp.c_proj; "mlp.c_proj" only the MLP one.
  assert.equal(paths({ target_modules: ["c_proj"] }, gpt2Modules()).length, 4);
  assert.deepEqual(paths({ target_modules: ["mlp.c_proj"] }, gpt2Modules()), [
    "transformer.h.0.mlp.c_proj",
    "transformer.h.1.mlp.c_proj",
  ]);
});

test("a string is a full-match regex", () => {
  assert.deepEqual(paths({ target_modules: ".*\\.1\\.self_attn\\.(q|v)_proj" }), [
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.self_attn.v_proj",
  ]);
  // Not a search: "q_proj" alone matches no full path.
  assert.throws(() => paths({ target_modules: "q_proj" }), /regex "q_proj" matches no module of the model/);
});

test('"all-linear" takes every linear layer except the output head', () => {
  const p = paths({ target_modules: "all-linear" });
  assert.equal(p.length, 14);
  assert.ok(!p.includes("lm_head"));
  assert.ok(!p.includes("model.embed_tokens"));
  const g = selectTargets(makeLoraConfig({ target_modules: "all-linear" }), gpt2Modules());
  assert.equal(g.length, 8);
  assert.ok(
    g.every((s) => s.fanInFanOut),
    "Conv1D layers are fan_in_fan_out whatever the config says",
  );
});

test("layers_to_transform (and layers_pattern) restrict the suffix matches to layer indices", () => {
  const m = llamaModules(4);
  assert.deepEqual(paths({ target_modules: ["q_proj"], layers_to_transform: [1, 3] }, m), [
    "model.layers.1.self_attn.q_proj",
    "model.layers.3.self_attn.q_proj",
  ]);
  assert.deepEqual(paths({ target_modules: ["q_proj"], layers_to_transform: 2 }, m), [
    "model.layers.2.self_attn.q_proj",
  ]);
  assert.deepEqual(
    paths({ target_modules: ["v_proj"], layers_to_transform: [0], layers_pattern: "layers" }, m),
    ["model.layers.0.self_attn.v_proj"],
  );
  assert.deepEqual(
    paths({ target_modules: ["c_attn"], layers_to_transform: [1], layers_pattern: ["h"] }, gpt2Modules()),
    ["transformer.h.1.attn.c_attn"],
  );
  // An exact full name bypasses the layer filter, as in PEFT.
  assert.deepEqual(paths({ target_modules: ["model.layers.3.mlp.up_proj"], layers_to_transform: [0] }, m), [
    "model.layers.3.mlp.up_proj",
  ]);
  assert.equal(layerIndexOf("model.layers.12.self_attn.q_proj", null), 12);
  assert.equal(layerIndexOf("model.layers.1.experts.0.w1", null), 1, "the first numbered segment");
  assert.equal(layerIndexOf("lm_head", null), undefined);
  assert.throws(
    () => paths({ target_modules: ["q_proj"], layers_to_transform: [7] }, m),
    /select no module once layers_to_transform \[7\] are applied/,
  );
});

test("exclude_modules: list (exact or suffix) and regex", () => {
  assert.deepEqual(
    paths({
      target_modules: ["q_proj", "v_proj"],
      exclude_modules: ["model.layers.0.self_attn.q_proj", "1.self_attn.v_proj"],
    }),
    ["model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.q_proj"],
  );
  assert.deepEqual(paths({ target_modules: "all-linear", exclude_modules: ".*mlp.*|.*\\.0\\..*" }), [
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.self_attn.k_proj",
    "model.layers.1.self_attn.v_proj",
    "model.layers.1.self_attn.o_proj",
  ]);
});

test("rank_pattern / alpha_pattern give per-module r, alpha and scaling", () => {
  const sel = selectTargets(
    makeLoraConfig({
      r: 8,
      lora_alpha: 16,
      target_modules: ["q_proj", "down_proj", "embed_tokens"],
      rank_pattern: { down_proj: 4 },
      alpha_pattern: { "layers\\.1\\.self_attn\\.q_proj": 32 },
    }),
    llamaModules(),
  );
  const by = Object.fromEntries(sel.map((s) => [s.path, s]));
  assert.deepEqual(
    {
      r: by["model.layers.0.mlp.down_proj"]!.r,
      s: by["model.layers.0.mlp.down_proj"]!.scaling,
      in: by["model.layers.0.mlp.down_proj"]!.in,
    },
    { r: 4, s: 4, in: 172 },
  );
  assert.equal(by["model.layers.0.self_attn.q_proj"]!.scaling, 2);
  assert.equal(by["model.layers.1.self_attn.q_proj"]!.alpha, 32);
  assert.equal(by["model.layers.1.self_attn.q_proj"]!.scaling, 4);
  assert.deepEqual(
    {
      kind: by["model.embed_tokens"]!.kind,
      in: by["model.embed_tokens"]!.in,
      out: by["model.embed_tokens"]!.out,
    },
    { kind: "embedding", in: 512, out: 64 },
  );
});

test("a target that matches nothing lists the model's module names", () => {
  assert.throws(
    () => selectTargets(makeLoraConfig({ target_modules: ["q_proj", "query"] }), llamaModules()),
    (e: Error) =>
      e instanceof LoraTsError &&
      e.message ===
        'LoRA target_modules entry "query" matches no module of the model (modules: embed_tokens, q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head)',
  );
});

test("null target_modules take the architecture's default", () => {
  const sel = selectTargets(makeLoraConfig({}), llamaModules(), { modelType: "llama" });
  assert.deepEqual(
    sel.map((s) => s.path),
    [
      "model.layers.0.self_attn.q_proj",
      "model.layers.0.self_attn.v_proj",
      "model.layers.1.self_attn.q_proj",
      "model.layers.1.self_attn.v_proj",
    ],
  );
  const g = selectTargets(makeLoraConfig({}), gpt2Modules(), { modelType: "gpt2" });
  assert.deepEqual(
    g.map((s) => s.path),
    ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"],
  );
  assert.throws(() => selectTargets(makeLoraConfig({}), llamaModules()), /no target_modules/);
});

test("parameter accounting: 4096×4096 at r=8 is 65,536 trainable (0.39%)", () => {
  const m: ModuleInfo[] = [{ path: "layer.q_proj", kind: "linear", inFeatures: 4096, outFeatures: 4096 }];
  const sel = selectTargets(makeLoraConfig({ r: 8, target_modules: ["q_proj"] }), m);
  const c = countParams(sel, 4096 * 4096);
  assert.equal(c.trainable_params, 65_536);
  assert.equal(c.total_params, 16_777_216 + 65_536);
  assert.equal(c.trainable_percent.toFixed(2), "0.39");
  assert.deepEqual(c.modules, [{ name: "layer.q_proj", in: 4096, out: 4096, r: 8, params: 65_536 }]);
  // Embeddings: r·(vocab + dim).
  const e = countParams(
    selectTargets(makeLoraConfig({ r: 4, target_modules: ["embed_tokens"] }), llamaModules()),
    1000,
  );
  assert.equal(e.trainable_params, 4 * (512 + 64));
});
