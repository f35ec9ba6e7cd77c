/**
 * `lora-ts convert gguf`: a llama.cpp GGUF file of a Llama-architecture model (general.architecture
 * "llama", F32/F16/BF16 tensors) -> a Hugging Face model directory: config.json from the `llama.*`
 * metadata, model.safetensors under HF names, tokenizer.json + tokenizer_config.json from the
 * `tokenizer.ggml.*` metadata, generation_config.json with the BOS/EOS ids.
 *
 * Tensor names and shapes come from the Llama family record (llama.ts: `gguf` names, tensorShapes).
 * GGUF's dims are innermost first, so a stored [in, out] matrix is PyTorch's [out, in] row-major: the
 * bytes are copied unchanged, except that q/k rows go from llama.cpp's interleaved-pair RoPE layout to
 * HF's rotate_half layout (io/rope-rows.ts; the family's ropeRowHeads: q over head_count heads, k
 * over head_count_kv). F16 and BF16 tensors stay 16-bit (their raw bits are kept).
 *
 * The embedding is tied (tie_word_embeddings, no lm_head) when there is no output.weight, or when
 * output.weight is byte for byte the same as token_embd.weight (llama.cpp's llama2.c converter writes
 * the shared classifier out again).
 *
 * Anything else (another architecture, quantized tensors, mixture-of-experts, Llama 3.1's
 * rope_freqs table, unknown tensors) fails with one line naming the file and what is unsupported.
 */
import { join } from "node:path";
import type { DType } from "../graph/dtype.js";
import { GGML_TYPE_BF16, GGML_TYPE_F16, GGML_TYPE_F32, GgufFile } from "../io/gguf.js";
import { permuteRopeRows } from "../io/rope-rows.js";
import { type TensorToWrite, writeSafetensors } from "../io/safetensors.js";
import { type JsonObject, tokenizerFromGguf } from "../io/tokenizer-json.js";
import { writeDirAtomic, writeJsonAtomic } from "../util/atomic.js";
import { preview } from "../util/describe.js";
import { FileFormatError } from "../util/errors.js";
import { refuseBadOut } from "../util/out-dir.js";
import { ggufTensorName, hfTensorName } from "./family.js";
import { llamaFamily } from "./llama.js";

export interface ConvertGgufOptions {
  /** The .gguf file. */
  model: string;
  /** Output directory (must not exist or be empty, unless `force`). */
  out: string;
  /** Replace an existing output directory. */
  force?: boolean;
}

const DTYPES: Record<number, DType> = {
  [GGML_TYPE_F32]: "float32",
  [GGML_TYPE_F16]: "float16",
  [GGML_TYPE_BF16]: "bfloat16",
};

/** The shortest decimal that rounds to the same float32 (1e-5 rather than 9.999999747378752e-6). */
function shortestF32(v: number): number {
  const f = Math.fround(v);
  for (let p = 1; p <= 9; p++) {
    const d = Number(f.toPrecision(p));
    if (Math.fround(d) === f) return d;
  }
  return f;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

export interface GgufHfModel {
  config: JsonObject;
  /** Tensors under HF names, q/k permuted; lm_head omitted when tied. */
  tensors: TensorToWrite[];
  tokenizer: { tokenizer: JsonObject; config: JsonObject } | null;
  generationConfig: JsonObject;
}

/** Reads a llama GGUF into what convertGguf writes (all checks happen here, before any file is made). */
export function readGgufAsHf(path: string): GgufHfModel {
  const g = GgufFile.open(path);
  const fail = (problem: string) => new FileFormatError(path, problem);
  const family = llamaFamily; // the one family GGUF files convert from so far
  const arch = g.string("general.architecture", "");
  if (arch !== family.gguf.architecture) {
    throw fail(
      `GGUF architecture ${arch === "" ? "(missing general.architecture)" : preview(arch)} is not supported (only "llama")`,
    );
  }
  for (const t of g.tensors) {
    if (DTYPES[t.type] === undefined) {
      throw fail(
        `tensor "${t.name}" has type ${t.typeName}; only F32, F16 and BF16 GGUF files can be converted (quantized tensors are not supported)`,
      );
    }
  }
  const experts = g.number("llama.expert_count", 0);
  if (experts > 0) throw fail(`mixture-of-experts GGUF (llama.expert_count ${experts}) is not supported`);
  if (g.hasTensor("rope_freqs.weight")) {
    throw fail('tensor "rope_freqs.weight" (Llama 3.1 RoPE frequency factors) is not supported');
  }
  for (const t of g.tensors) {
    if (hfTensorName(family, t.name) === null) throw fail(`unexpected tensor "${t.name}" in a llama GGUF`);
  }

  const hidden = g.number("llama.embedding_length");
  const layers = g.number("llama.block_count");
  // Every layer has several tensors: a larger count is corrupt, and listing its expected tensors
  // would take minutes and gigabytes before failing.
  if (!Number.isInteger(layers) || layers < 1 || layers > g.tensors.length) {
    throw fail(`llama.block_count ${layers} does not fit the file's ${g.tensors.length} tensors`);
  }
  const intermediate = g.number("llama.feed_forward_length");
  const heads = g.number("llama.attention.head_count");
  const kvHeads = g.number("llama.attention.head_count_kv", heads);
  if (heads <= 0 || kvHeads <= 0 || heads % kvHeads !== 0) {
    throw fail(`llama.attention.head_count ${heads} is not a multiple of head_count_kv ${kvHeads}`);
  }
  const headDim = g.number("llama.attention.key_length", hidden / heads);
  const valueDim = g.number("llama.attention.value_length", headDim);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0 || valueDim !== headDim) {
    throw fail(`head size ${headDim} (key) / ${valueDim} (value) is not supported`);
  }
  const ropeDim = g.number("llama.rope.dimension_count", headDim);
  if (ropeDim !== headDim) {
    throw fail(`partial rotary embeddings (llama.rope.dimension_count ${ropeDim} < head size ${headDim})`);
  }
  let ropeScaling: JsonObject | null = null;
  const scalingType = g.string("llama.rope.scaling.type", "none");
  if (scalingType === "linear") {
    ropeScaling = { rope_type: "linear", factor: shortestF32(g.number("llama.rope.scaling.factor")) };
  } else if (scalingType !== "none") {
    throw fail(`RoPE scaling ${preview(scalingType)} is not supported (only none and linear)`);
  }

  const embd = g.tensorInfo("token_embd.weight");
  const vocabSize = embd.shape[0]!;
  const tokenCount = g.has("tokenizer.ggml.tokens") ? g.strings("tokenizer.ggml.tokens").length : vocabSize;
  if (embd.shape.length !== 2 || embd.shape[1] !== hidden || tokenCount > vocabSize) {
    throw fail(
      `token_embd.weight has shape [${embd.shape}], expected [vocab, ${hidden}] with vocab >= ${tokenCount} tokens`,
    );
  }

  // The config fields that fix the tensor shapes; they open the written config.json too.
  const shapeFields = {
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    vocab_size: vocabSize,
  };
  // Expected tensors: the family's, under their GGUF names (GGUF's row-major shape is HF's).
  const shapeConfig = family.parseConfig(shapeFields, path, "llama");
  const headName = ggufTensorName(family, `${family.headPath}.weight`);
  const expected = new Map<string, number[]>();
  for (const [name, shape] of family.tensorShapes(shapeConfig)) {
    const ggufName = ggufTensorName(family, name);
    if (ggufName === null) throw fail(`tensor "${name}" has no GGUF name`);
    if (ggufName !== headName || g.hasTensor(ggufName)) expected.set(ggufName, shape);
  }
  for (const [name, shape] of expected) {
    if (!g.hasTensor(name)) throw fail(`missing tensor "${name}"`);
    const got = g.tensorInfo(name).shape;
    if (got.join(",") !== shape.join(",")) {
      throw fail(`tensor "${name}" has shape [${got}], expected [${shape}]`);
    }
  }
  for (const t of g.tensors) {
    if (!expected.has(t.name)) throw fail(`unexpected tensor "${t.name}" (block_count is ${layers})`);
  }

  const embdBytes = g.readTensorBytes("token_embd.weight");
  let tied = true;
  if (headName !== null && g.hasTensor(headName)) {
    const out = g.tensorInfo(headName);
    tied = out.type === embd.type && sameBytes(g.readTensorBytes(headName), embdBytes);
  }

  const tensors: TensorToWrite[] = [];
  const numelByDtype = new Map<DType, number>();
  for (const t of g.tensors) {
    if (tied && t.name === headName) continue;
    const dtype = DTYPES[t.type]!;
    numelByDtype.set(dtype, (numelByDtype.get(dtype) ?? 0) + t.numel);
    let data = t.name === "token_embd.weight" ? embdBytes : g.readTensorBytes(t.name);
    const rowBytes = (t.shape[t.shape.length - 1]! * data.length) / t.numel;
    const name = hfTensorName(family, t.name)!;
    const ropeHeads = family.gguf.ropeRowHeads(name, shapeConfig);
    if (ropeHeads !== null) data = permuteRopeRows(data, ropeHeads, rowBytes, "toHf");
    tensors.push({ name, dtype, shape: t.shape, data });
  }
  const torchDtype = [...numelByDtype].sort((a, b) => b[1] - a[1])[0]![0];

  const tokenizer = g.has("tokenizer.ggml.model") ? tokenizerFromGguf(g) : null;
  const tokenId = (key: string): number | null => {
    const v = g.get(key);
    if (typeof v !== "number" && typeof v !== "bigint") return null;
    const n = Number(v);
    return n >= 0 && n < vocabSize ? n : null;
  };
  const bos = tokenId("tokenizer.ggml.bos_token_id");
  const eos = tokenId("tokenizer.ggml.eos_token_id");
  const contextLength = g.number("llama.context_length", 2048);
  if (tokenizer) {
    tokenizer.config["model_max_length"] = contextLength;
    const template = g.get("tokenizer.chat_template");
    if (typeof template === "string") tokenizer.config["chat_template"] = template;
  }

  const config: JsonObject = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    ...shapeFields,
    max_position_embeddings: contextLength,
    rms_norm_eps: shortestF32(g.number("llama.attention.layer_norm_rms_epsilon", 1e-5)),
    rope_theta: shortestF32(g.number("llama.rope.freq_base", 10000)),
    rope_scaling: ropeScaling,
    hidden_act: "silu",
    tie_word_embeddings: tied,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: bos,
    eos_token_id: eos,
    torch_dtype: torchDtype,
  };
  const generationConfig: JsonObject = {};
  if (bos !== null) generationConfig["bos_token_id"] = bos;
  if (eos !== null) generationConfig["eos_token_id"] = eos;
  return { config, tensors, tokenizer, generationConfig };
}

/** Converts a llama GGUF file into a Hugging Face model directory, written atomically. */
export async function convertGguf(opts: ConvertGgufOptions): Promise<void> {
  // The converted file is only read: with --force, replacing a folder holding it would delete it.
  refuseBadOut(opts.out, [{ path: opts.model, what: "the input file" }]);
  const m = readGgufAsHf(opts.model);
  await writeDirAtomic(
    opts.out,
    (dir) => {
      writeJsonAtomic(join(dir, "config.json"), m.config);
      writeSafetensors(join(dir, "model.safetensors"), m.tensors, { format: "pt" });
      if (m.tokenizer) {
        writeJsonAtomic(join(dir, "tokenizer.json"), m.tokenizer.tokenizer);
        writeJsonAtomic(join(dir, "tokenizer_config.json"), m.tokenizer.config);
      }
      writeJsonAtomic(join(dir, "generation_config.json"), m.generationConfig);
    },
    { replace: opts.force },
  );
}
