import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../src/graph/half.js";
import { openSafetensors, writeSafetensors } from "../../src/io/safetensors.js";
import {
  type Adapter,
  canonicalKey,
  createAdapter,
  pissaToLora,
  validateAdapter,
} from "../../src/lora/adapter.js";
import { loadAdapter, saveAdapter } from "../../src/lora/adapter-files.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { adapterDelta } from "../../src/lora/merge.js";
import { selectTargets } from "../../src/lora/targets.js";
import { LoraTsError } from "../../src/util/errors.js";
import {
  gpt2Modules,
  LLAMA_ALL_TARGETS,
  llamaModules,
  maxAbsDiff,
  randomArray,
  tempDir,
} from "./fixtures.js";

const dir = tempDir("adapter");
let n = 0;
const fresh = (): string => join(dir, `a${n++}`);

function shapes(a: Adapter): Record<string, number[]> {
  return Object.fromEntries(
    [...a.tensors].map(([k, t]) => [k, t.shape]).sort(([x], [y]) => ((x as string) < (y as string) ? -1 : 1)),
  );
}

test("Llama adapter: key names and shapes equal PEFT's", () => {
  const modules = llamaModules(2);
  const cfg = makeLoraConfig({
    r: 8,
    lora_alpha: 16,
    target_modules: LLAMA_ALL_TARGETS,
  });
  const { adapter } = createAdapter(cfg, selectTargets(cfg, modules), { seed: 1 });
  const out = fresh();
  saveAdapter(out, adapter);
  const f = openSafetensors(join(out, "adapter_model.safetensors"));
  const onDisk = Object.fromEntries([...f.tensors.values()].map((t) => [t.name, [t.stDtype, ...t.shape]]));
  assert.deepEqual(f.metadata, { format: "pt" });
  f.close();
  const expected: Record<string, (string | number)[]> = {
    "base_model.model.model.embed_tokens.lora_embedding_A": ["F32", 8, 512],
    "base_model.model.model.embed_tokens.lora_embedding_B": ["F32", 64, 8],
    "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": ["F32", 64, 8],
    "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight": ["F32", 32, 8],
    "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight": ["F32", 32, 8],
    "base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight": ["F32", 64, 8],
    "base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight": ["F32", 172, 8],
    "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight": ["F32", 172, 8],
    "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight": ["F32", 8, 172],
    "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight": ["F32", 64, 8],
    "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight": ["F32", 64, 8],
    "base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight": ["F32", 32, 8],
    "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight": ["F32", 32, 8],
    "base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight": ["F32", 64, 8],
    "base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight": ["F32", 172, 8],
    "base_model.model.model.layers.1.mlp.up_proj.lora_A.weight": ["F32", 8, 64],
    "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight": ["F32", 172, 8],
    "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight": ["F32", 8, 172],
    "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight": ["F32", 64, 8],
  };
  assert.deepEqual(onDisk, expected);
  const json = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
  assert.equal(json.peft_type, "LORA");
  assert.equal(json.r, 8);
  assert.equal(json.lora_alpha, 16);
  assert.equal(json.task_type, "CAUSAL_LM");
  assert.deepEqual(Object.keys(json), [...Object.keys(json)].sort(), "keys sorted as PEFT writes them");
});

test("GPT-2 adapter: key names and shapes equal PEFT's (Conv1D A [r, in], B [out, r])", () => {
  const cfg = makeLoraConfig({ r: 4, target_modules: ["c_attn", "c_proj", "c_fc", "wte"] });
  const { adapter } = createAdapter(cfg, selectTargets(cfg, gpt2Modules(2)), { seed: 1 });
  assert.deepEqual(shapes(adapter), {
    "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight": [4, 48],
    "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight": [144, 4],
    "base_model.model.transformer.h.0.attn.c_proj.lora_A.weight": [4, 48],
    "base_model.model.transformer.h.0.attn.c_proj.lora_B.weight": [48, 4],
    "base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight": [4, 48],
    "base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight": [192, 4],
    "base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight": [4, 192],
    "base_model.model.transformer.h.0.mlp.c_proj.lora_B.weight": [48, 4],
    "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight": [4, 48],
    "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight": [144, 4],
    "base_model.model.transformer.h.1.attn.c_proj.lora_A.weight": [4, 48],
    "base_model.model.transformer.h.1.attn.c_proj.lora_B.weight": [48, 4],
    "base_model.model.transformer.h.1.mlp.c_fc.lora_A.weight": [4, 48],
    "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight": [192, 4],
    "base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight": [4, 192],
    "base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight": [48, 4],
    "base_model.model.transformer.wte.lora_embedding_A": [4, 100],
    "base_model.model.transformer.wte.lora_embedding_B": [48, 4],
  });
});

/** An adapter directory as PEFT writes one, with the adapter-name infix and a future config field. */
function writePeftStyle(
  out: string,
  opts: { dtype?: "F32" | "F16" | "BF16"; infix?: boolean } = {},
): Record<string, Float32Array> {
  mkdirSync(out, { recursive: true });
  const config = {
    alpha_pattern: {},
    base_model_name_or_path: "stories260K",
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    lora_alpha: 32,
    lora_dropout: 0.1,
    peft_type: "LORA",
    r: 8,
    rank_pattern: { v_proj: 4 },
    target_modules: ["q_proj", "v_proj"],
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: false,
    peft_version: "0.99.0",
    eva_config: null,
  };
  writeFileSync(join(out, "adapter_config.json"), JSON.stringify(config, null, 2));
  const values: Record<string, Float32Array> = {};
  const tensors = [];
  let seed = 10;
  for (const l of [0, 1]) {
    for (const [proj, r, o] of [
      ["q_proj", 8, 64],
      ["v_proj", 4, 32],
    ] as const) {
      for (const [part, shape] of [
        ["lora_A", [r, 64]],
        ["lora_B", [o, r]],
      ] as const) {
        const canonical = `base_model.model.model.layers.${l}.self_attn.${proj}.${part}.weight`;
        const name = opts.infix ? canonical.replace(`${part}.weight`, `${part}.default.weight`) : canonical;
        let v = randomArray(shape[0] * shape[1], seed++);
        const dtype = opts.dtype ?? "F32";
        const data = dtype === "F16" ? f32ToF16(v) : dtype === "BF16" ? f32ToBf16(v) : v;
        // Values as they are after the narrowing.
        if (dtype !== "F32")
          v = dtype === "F16" ? f16ToF32(data as Uint16Array) : bf16ToF32(data as Uint16Array);
        values[canonical] = v;
        tensors.push({
          name,
          dtype: dtype === "F16" ? "float16" : dtype === "BF16" ? "bfloat16" : "float32",
          shape,
          data,
        } as const);
      }
    }
  }
  writeSafetensors(join(out, "adapter_model.safetensors"), tensors as never, { format: "pt" });
  return values;
}

test("load -> re-save keeps every tensor bit for bit and the unknown config fields", () => {
  const src = fresh();
  const values = writePeftStyle(src);
  const a = loadAdapter(src, llamaModules(2));
  assert.equal(a.tensors.size, 8);
  for (const [k, v] of Object.entries(values)) assert.deepEqual(a.tensors.get(k)!.data, v);
  const out = fresh();
  saveAdapter(out, a);
  // Same tensor bytes as the source file.
  const f1 = openSafetensors(join(src, "adapter_model.safetensors"));
  const f2 = openSafetensors(join(out, "adapter_model.safetensors"));
  assert.deepEqual([...f2.tensors.keys()].sort(), [...f1.tensors.keys()].sort());
  for (const name of f1.tensors.keys())
    assert.deepEqual(Buffer.from(f2.read(name)), Buffer.from(f1.read(name)), name);
  f1.close();
  f2.close();
  const c1 = JSON.parse(readFileSync(join(src, "adapter_config.json"), "utf8"));
  const c2 = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
  assert.deepEqual(c2, c1);
  assert.equal(c2.peft_version, "0.99.0");
  // And loading the re-saved one gives the same adapter.
  const b = loadAdapter(out, llamaModules(2));
  for (const [k, t] of a.tensors) assert.deepEqual(b.tensors.get(k)!.data, t.data);
});

test("accepts PEFT's adapter-name infix and fp16/bf16 tensors; dtype 'same' re-saves them bit for bit", () => {
  for (const dtype of ["F16", "BF16"] as const) {
    const src = fresh();
    const values = writePeftStyle(src, { dtype, infix: true });
    const a = loadAdapter(src, llamaModules(2));
    assert.ok(a.tensors.has("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    for (const [k, v] of Object.entries(values)) {
      const t = a.tensors.get(k)!;
      assert.ok(t.data instanceof Float32Array);
      assert.deepEqual(t.data, v);
    }
    const out = fresh();
    saveAdapter(out, a, { dtype: "same" });
    const f1 = openSafetensors(join(src, "adapter_model.safetensors"));
    const f2 = openSafetensors(join(out, "adapter_model.safetensors"));
    for (const name of f1.tensors.keys()) {
      assert.deepEqual(Buffer.from(f2.read(canonicalKey(name))), Buffer.from(f1.read(name)));
      assert.equal(f2.info(canonicalKey(name)).stDtype, dtype);
    }
    f1.close();
    f2.close();
    // Default save is fp32.
    const out32 = fresh();
    saveAdapter(out32, a);
    const f3 = openSafetensors(join(out32, "adapter_model.safetensors"));
    assert.ok([...f3.tensors.values()].every((t) => t.stDtype === "F32"));
    f3.close();
  }
  assert.equal(
    canonicalKey("model.layers.0.mlp.up_proj.lora_B.default.weight"),
    "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight",
  );
  assert.equal(
    canonicalKey("base_model.model.model.embed_tokens.lora_embedding_A.default"),
    "base_model.model.model.embed_tokens.lora_embedding_A",
  );
});

test("validation: shape mismatch, missing key, unexpected key and unsupported features name the key", () => {
  const src = fresh();
  writePeftStyle(src);
  const a = loadAdapter(src);
  const clone = (): Adapter => ({ ...a, tensors: new Map(a.tensors) });
  const q0A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
  const bad1 = clone();
  bad1.tensors.set(q0A, { shape: [8, 63], data: new Float32Array(8 * 63) });
  assert.throws(
    () => validateAdapter(bad1, llamaModules(2)),
    (e: Error) =>
      e.message ===
      `${src}: tensor "${q0A}": shape [8, 63] does not fit the model: model.layers.0.self_attn.q_proj (linear, in 64, out 64, r 8) needs [8, 64]`,
  );
  const bad2 = clone();
  bad2.tensors.delete("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
  assert.throws(
    () => validateAdapter(bad2, llamaModules(2)),
    /tensor "base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight": missing: the config targets model\.layers\.1\.self_attn\.v_proj \(r=4\)/,
  );
  const bad3 = clone();
  bad3.tensors.set("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight", {
    shape: [8, 64],
    data: new Float32Array(512),
  });
  assert.throws(
    () => validateAdapter(bad3, llamaModules(2)),
    /"base_model\.model\.model\.layers\.0\.mlp\.up_proj\.lora_A\.weight": unexpected: the config does not target module/,
  );
  const bad4 = clone();
  bad4.tensors.set("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", {
    shape: [64],
    data: new Float32Array(64),
  });
  assert.throws(
    () => validateAdapter(bad4, llamaModules(2)),
    /lora_magnitude_vector": unexpected: a DoRA magnitude, but the config has no use_dora/,
  );
  // A model without layer 1 (another base model): the rank-pattern'd v_proj of layer 1 is unexpected.
  assert.throws(
    () => validateAdapter(a, llamaModules(1)),
    /layers\.1\.self_attn\.q_proj\.lora_A\.weight": unexpected: the model has no module/,
  );
  // use_dora without the magnitudes.
  const dora = fresh();
  writePeftStyle(dora);
  const cfg = JSON.parse(readFileSync(join(dora, "adapter_config.json"), "utf8"));
  writeFileSync(join(dora, "adapter_config.json"), JSON.stringify({ ...cfg, use_dora: true }));
  assert.throws(
    () => loadAdapter(dora, llamaModules(2)),
    (e: Error) =>
      /tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_magnitude_vector": missing: the config has use_dora but model\.layers\.0\.self_attn\.q_proj has no magnitude$/.test(
        e.message,
      ),
  );
  // Not an adapter directory.
  assert.throws(() => loadAdapter(join(dir, "nope")), /not an adapter directory \(no adapter_config\.json\)/);
});

test("bias tensors (bias=lora_only) are accepted where PEFT puts them", () => {
  const cfg = makeLoraConfig({ target_modules: ["c_attn"], bias: "lora_only" });
  const { adapter } = createAdapter(cfg, selectTargets(cfg, gpt2Modules(1)), { seed: 3 });
  adapter.tensors.set("base_model.model.transformer.h.0.attn.c_attn.base_layer.bias", {
    shape: [144],
    data: new Float32Array(144),
  });
  validateAdapter(adapter, gpt2Modules(1));
  adapter.tensors.set("base_model.model.transformer.h.0.attn.c_attn.base_layer.bias", {
    shape: [48],
    data: new Float32Array(48),
  });
  assert.throws(
    () => validateAdapter(adapter, gpt2Modules(1)),
    /base_layer\.bias": shape \[48\] does not fit the model: the bias of transformer\.h\.0\.attn\.c_attn needs \[144\]/,
  );
});

test("saving over an existing directory replaces the adapter and keeps other files", () => {
  const cfg = makeLoraConfig({ target_modules: ["q_proj"], r: 2 });
  const sel = selectTargets(cfg, llamaModules(1));
  const out = fresh();
  saveAdapter(out, createAdapter(cfg, sel, { seed: 1 }).adapter);
  writeFileSync(join(out, "README.md"), "notes");
  writeFileSync(join(out, "adapter_model.bin"), "stale");
  const second = createAdapter(cfg, sel, { seed: 2 }).adapter;
  second.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")!.data.fill(0.5);
  saveAdapter(out, second);
  assert.deepEqual(readdirSync(out).sort(), [
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
  ]);
  assert.equal(readFileSync(join(out, "README.md"), "utf8"), "notes");
  const back = loadAdapter(out, llamaModules(1));
  assert.ok(
    back.tensors
      .get("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")!
      .data.every((v) => v === 0.5),
  );
  // No temporary directories left beside it.
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes(".tmp") || f.includes(".old")),
    [],
  );
  assert.ok(!existsSync(`${out}.tmp`));
});

test("PiSSA conversion: the rank-2r adapter's delta is s·(B·A − B₀·A₀)", () => {
  const modules = llamaModules(1);
  const cfg = makeLoraConfig({
    r: 4,
    lora_alpha: 8,
    target_modules: ["q_proj", "embed_tokens"],
    init_lora_weights: "pissa",
  });
  const sel = selectTargets(cfg, modules);
  const W = randomArray(64 * 64, 5);
  const { adapter: init } = createAdapter(cfg, sel, { seed: 1, baseWeight: () => W });
  // "Train": perturb every tensor.
  const trained: Adapter = { config: cfg, tensors: new Map() };
  let s = 100;
  for (const [k, t] of init.tensors) {
    const d = randomArray(t.data.length, s++, 0.01);
    trained.tensors.set(k, { shape: t.shape, data: t.data.map((v, i) => v + d[i]!) });
  }
  const conv = pissaToLora(trained, init);
  assert.equal(conv.config.r, 8);
  assert.equal(conv.config.lora_alpha, 16);
  assert.equal(conv.config.init_lora_weights, true);
  validateAdapter(conv, modules);
  const path = "model.layers.0.self_attn.q_proj";
  const dConv = adapterDelta(conv, path)!;
  const dT = adapterDelta(trained, path)!;
  const d0 = adapterDelta(init, path)!;
  assert.ok(
    maxAbsDiff(
      dConv,
      dT.map((v, i) => v - d0[i]!),
    ) < 1e-5,
  );
  const e = "model.embed_tokens";
  assert.ok(maxAbsDiff(adapterDelta(conv, e)!, adapterDelta(trained, e)!) < 1e-6, "embedding delta kept");
});

test("fuzz regression: adapter_config.json that is not JSON gives one line even when V8 quotes a \\r", () => {
  // Before: only "\n" was cut from V8's message, which quotes the start of the text raw.
  const at = fresh();
  writePeftStyle(at);
  writeFileSync(join(at, "adapter_config.json"), "\u0000\r{");
  assert.throws(
    () => loadAdapter(at),
    (e: unknown) =>
      e instanceof LoraTsError &&
      e.message.startsWith(`${join(at, "adapter_config.json")}: not valid JSON (`) &&
      !/[\r\n]/.test(e.message),
  );
});
