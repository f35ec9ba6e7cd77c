/**
 * The model-family records (models/family.ts, llama.ts, gpt2.ts): lookup, architecture names, tied
 * weights, and the Hugging Face ↔ GGUF tensor-name table used both ways.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SUPPORTED_MODEL_TYPES } from "../../src/models/config.js";
import {
  embeddingWeightName,
  expectedTensors,
  FAMILIES,
  familyOf,
  familyOfGgufArchitecture,
  ggufTensorName,
  hfArchitecture,
  hfTensorName,
  parseModelConfig,
  tiedWeights,
} from "../../src/models/family.js";
import { gpt2Config, llamaConfig } from "./fixtures.js";

const LLAMA = parseModelConfig(llamaConfig({ num_key_value_heads: 2 }), "c.json");
const GPT2 = parseModelConfig(gpt2Config(), "c.json");

test("family: lookup by config, by name and by GGUF architecture", () => {
  assert.deepEqual(
    FAMILIES.map((f) => f.name),
    ["llama", "gpt2"],
  );
  assert.equal(familyOf(LLAMA).name, "llama");
  assert.equal(familyOf("gpt2").name, "gpt2");
  assert.equal(familyOfGgufArchitecture("llama")?.name, "llama");
  assert.equal(familyOfGgufArchitecture("gpt2")?.name, "gpt2");
  assert.equal(familyOfGgufArchitecture("falcon"), undefined);
  assert.throws(() => familyOf("bert" as never), /unknown model family "bert"/);
  // The supported model_type list (in error messages) is exactly the families' types, in order.
  assert.deepEqual(
    FAMILIES.flatMap((f) => Object.keys(f.architectures)),
    [...SUPPORTED_MODEL_TYPES],
  );
});

test("family: HF architecture class per model_type, also read back from architectures[0]", () => {
  for (const [type, cls] of [
    ["llama", "LlamaForCausalLM"],
    ["mistral", "MistralForCausalLM"],
    ["qwen2", "Qwen2ForCausalLM"],
    ["gpt2", "GPT2LMHeadModel"],
  ] as const) {
    const json = type === "gpt2" ? gpt2Config() : llamaConfig({ model_type: type });
    assert.equal(hfArchitecture(parseModelConfig(json, "c.json")), cls);
    const noType: Record<string, unknown> = { ...json, architectures: [cls] };
    delete noType["model_type"];
    assert.equal(parseModelConfig(noType, "c.json").modelType, type);
  }
});

test("family: embedding table and tied head", () => {
  assert.equal(embeddingWeightName(LLAMA), "model.embed_tokens.weight");
  assert.equal(embeddingWeightName(GPT2), "transformer.wte.weight");
  assert.deepEqual([...tiedWeights(LLAMA)], []);
  assert.deepEqual([...tiedWeights(GPT2)], [["lm_head.weight", "transformer.wte.weight"]]);
  const tiedLlama = parseModelConfig(llamaConfig({ tie_word_embeddings: true }), "c.json");
  assert.deepEqual([...tiedWeights(tiedLlama)], [["lm_head.weight", "model.embed_tokens.weight"]]);
});

test("family: hub GPT-2 names gain 'transformer.'; prefixed and Llama names stay", () => {
  const gpt2 = familyOf("gpt2").canonicalNames(["wte.weight", "h.0.ln_1.weight", "lm_head.weight"]);
  assert.equal(gpt2("wte.weight"), "transformer.wte.weight");
  assert.equal(gpt2("lm_head.weight"), "lm_head.weight");
  const prefixed = familyOf("gpt2").canonicalNames(["transformer.wte.weight"]);
  assert.equal(prefixed("transformer.wte.weight"), "transformer.wte.weight");
  assert.equal(
    familyOf("llama").canonicalNames(["model.norm.weight"])("model.norm.weight"),
    "model.norm.weight",
  );
});

test("family: every tensor has a GGUF name, and the table reads back both ways", () => {
  for (const cfg of [LLAMA, GPT2]) {
    const family = familyOf(cfg);
    const seen = new Set<string>();
    for (const name of expectedTensors(cfg).keys()) {
      const gguf = ggufTensorName(family, name);
      assert.ok(gguf !== null, `${cfg.family}: ${name} has no GGUF name`);
      assert.ok(!seen.has(gguf), `${cfg.family}: ${gguf} named twice`);
      seen.add(gguf);
      assert.equal(hfTensorName(family, gguf), name);
    }
  }
  const llama = familyOf("llama");
  assert.equal(ggufTensorName(llama, "model.embed_tokens.weight"), "token_embd.weight");
  assert.equal(ggufTensorName(llama, "model.layers.1.self_attn.o_proj.weight"), "blk.1.attn_output.weight");
  assert.equal(hfTensorName(llama, "blk.0.ffn_gate.weight"), "model.layers.0.mlp.gate_proj.weight");
  assert.equal(hfTensorName(llama, "output.weight"), "lm_head.weight");
  assert.equal(hfTensorName(llama, "blk.0.attn_q.bias"), null);
  assert.equal(hfTensorName(llama, "rope_freqs.weight"), null);
  assert.equal(ggufTensorName(llama, "model.layers.0.self_attn.rotary_emb.inv_freq"), null);
  const gpt2 = familyOf("gpt2");
  assert.equal(ggufTensorName(gpt2, "transformer.h.1.attn.c_attn.bias"), "blk.1.attn_qkv.bias");
  assert.equal(hfTensorName(gpt2, "position_embd.weight"), "transformer.wpe.weight");
});

test("family: which q/k rows GGUF permutes, and which matrices it transposes", () => {
  const llama = familyOf("llama").gguf;
  assert.equal(llama.architecture, "llama");
  assert.equal(llama.ropeRowHeads("model.layers.0.self_attn.q_proj.weight", LLAMA), 4);
  assert.equal(llama.ropeRowHeads("model.layers.0.self_attn.k_proj.weight", LLAMA), 2);
  assert.equal(llama.ropeRowHeads("model.layers.0.self_attn.v_proj.weight", LLAMA), null);
  assert.equal(llama.transposed("model.layers.0.mlp.up_proj.weight"), false);
  const gpt2 = familyOf("gpt2").gguf;
  assert.equal(gpt2.architecture, "gpt2");
  assert.equal(gpt2.ropeRowHeads("transformer.h.0.attn.c_attn.weight", GPT2), null);
  assert.equal(gpt2.transposed("transformer.h.0.attn.c_attn.weight"), true);
  assert.equal(gpt2.transposed("transformer.h.0.attn.c_attn.bias"), false);
  assert.equal(gpt2.transposed("transformer.wte.weight"), false);
});
