/**
 * `lora-ts export gguf`: a Hugging Face model folder -> one llama.cpp GGUF file (io/gguf-write.ts),
 * the inverse of convert-gguf.ts, for llama.cpp's "llama" (Llama, Mistral, SmolLM), "qwen2" and "gpt2"
 * architectures, laid out as llama.cpp's convert_hf_to_gguf.py lays them out:
 * - tensor names from the family record (family.ts gguf), biases beside their weights;
 * - "llama": q/k rows (and biases) back in interleaved-pair rotary order (io/rope-rows.ts, "fromHf");
 *   "qwen2" keeps HF's order (llama.cpp runs it with NEOX-style rotary, which is HF's rotate_half);
 * - GPT-2's Conv1D [in, out] weights transposed to [out, in]; c_attn stays fused as attn_qkv;
 * - 1-D tensors (norms, biases) stay f32 whatever --dtype says, as llama.cpp's converter keeps them;
 *   a q8_0 matrix whose rows are not a multiple of 32 is written f16 (the converter's fallback);
 * - a tied head is not written: llama.cpp reads token_embd when output.weight is absent;
 * - the tokenizer as tokenizer.ggml.* metadata (gguf-tokenizer.ts), so llama.cpp tokenizes as
 *   lora-ts does.
 * Merged exports give the merged tensors as `override` (lora/export-gguf.ts); models/ never imports lora/.
 */
import { join } from "node:path";
import {
  type GgufMeta,
  type GgufTensorToWrite,
  type GgufWriteType,
  meta,
  writeGguf,
} from "../io/gguf-write.js";
import { permuteRopeRows } from "../io/rope-rows.js";
import { LoraTsError } from "../util/errors.js";
import type { HfModel } from "./assemble-model.js";
import { type ModelConfig, ropeInverseFrequencies } from "./config.js";
import { familyOf, ggufTensorName } from "./family.js";
import { ggufTokenizerMetadata, readJson, tokenText } from "./gguf-tokenizer.js";

export interface ExportGgufOptions {
  /** Matrix type; 1-D tensors are always f32. Default f32. */
  dtype?: GgufWriteType;
  /** Tensors to write instead of the checkpoint's (merged weights), by HF name, row-major HF layout. */
  override?: ReadonlyMap<string, Float32Array>;
  /** Write lm_head.weight as output.weight even though the model is tied (a merged head that differs). */
  untie?: boolean;
  /** general.name; default the folder's name. */
  name?: string;
}

/** llama.cpp's general.file_type (llama_ftype) of each --dtype: most tensors' type. */
const FILE_TYPE: Record<GgufWriteType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };

/** llama.cpp's architecture for a model: the family's, except Qwen2 which has its own (biases, NEOX rotary). */
export function ggufArchitecture(cfg: ModelConfig): string {
  return cfg.modelType === "qwen2" ? "qwen2" : familyOf(cfg).gguf.architecture;
}

/** The GGUF name of an HF tensor; a bias goes beside its weight ("attn_q.bias"). */
export function ggufName(cfg: ModelConfig, hfName: string): string {
  const family = familyOf(cfg);
  const direct = ggufTensorName(family, hfName);
  if (direct !== null) return direct;
  if (hfName.endsWith(".bias")) {
    const w = ggufTensorName(family, `${hfName.slice(0, -5)}.weight`);
    if (w?.endsWith(".weight")) return `${w.slice(0, -7)}.bias`;
  }
  throw new LoraTsError(`tensor "${hfName}" has no GGUF name for architecture ${ggufArchitecture(cfg)}`);
}

/** What llama.cpp cannot run as the model is configured: one line naming the config field. */
function refuseUnsupported(cfg: ModelConfig, file: string): void {
  const fail = (what: string) => {
    throw new LoraTsError(`${file}: ${what} cannot be exported to GGUF`);
  };
  if (cfg.family === "llama" && cfg.activation !== "silu") fail(`hidden_act ${cfg.activation}`);
  if (cfg.family === "gpt2" && cfg.activation !== "gelu_tanh") fail(`activation_function ${cfg.activation}`);
  if (cfg.scaleAttnByInverseLayerIdx) fail("scale_attn_by_inverse_layer_idx");
  if (cfg.ropeScaling?.type === "llama3" && ggufArchitecture(cfg) !== "llama")
    fail(`rope_scaling llama3 on ${cfg.modelType}`);
  if (cfg.modelType === "qwen2" && (cfg.oBias || cfg.mlpBias)) fail("a Qwen2 o_proj or MLP bias");
}

/** The architecture's hyperparameter keys (llama.cpp's LLM_KV_* under `<arch>.`). */
function hparams(cfg: ModelConfig, arch: string): GgufMeta[] {
  const k = (s: string) => `${arch}.${s}`;
  const m: GgufMeta[] = [
    meta.u32(k("context_length"), cfg.maxPositions),
    meta.u32(k("embedding_length"), cfg.hidden),
    meta.u32(k("block_count"), cfg.layers),
    meta.u32(k("feed_forward_length"), cfg.intermediate),
    meta.u32(k("attention.head_count"), cfg.heads),
    meta.u32(k("vocab_size"), cfg.vocabSize),
  ];
  if (cfg.family === "gpt2") {
    m.push(meta.f32(k("attention.layer_norm_epsilon"), cfg.normEps));
    return m;
  }
  m.push(
    meta.u32(k("attention.head_count_kv"), cfg.kvHeads),
    meta.f32(k("attention.layer_norm_rms_epsilon"), cfg.normEps),
    meta.f32(k("rope.freq_base"), cfg.ropeTheta),
    meta.u32(k("rope.dimension_count"), cfg.headDim),
  );
  // A head size other than hidden/heads (e.g. the default model's) must be stated.
  if (cfg.headDim * cfg.heads !== cfg.hidden) {
    m.push(
      meta.u32(k("attention.key_length"), cfg.headDim),
      meta.u32(k("attention.value_length"), cfg.headDim),
    );
  }
  if (cfg.ropeScaling?.type === "linear") {
    m.push(
      meta.str(k("rope.scaling.type"), "linear"),
      meta.f32(k("rope.scaling.factor"), cfg.ropeScaling.factor),
    );
  }
  return m;
}

/**
 * Heads over which llama.cpp's layout permutes the rows of an HF tensor (q over heads, k over kv
 * heads, their biases too) for the "llama" architecture; null when its rows are stored as HF's.
 */
export function ggufRopeHeads(cfg: ModelConfig, hfName: string): number | null {
  if (ggufArchitecture(cfg) !== "llama") return null;
  return familyOf(cfg).gguf.ropeRowHeads(hfName.replace(/\.bias$/, ".weight"), cfg);
}

/** The tensors to write, in the family's order, under GGUF names, in llama.cpp's layout. */
function ggufTensors(model: HfModel, opts: ExportGgufOptions): GgufTensorToWrite[] {
  const cfg = model.config;
  const family = familyOf(cfg);
  const dtype = opts.dtype ?? "f32";
  const head = `${family.headPath}.weight`;
  const out: GgufTensorToWrite[] = [];
  for (const [name, hfShape] of family.tensorShapes(cfg)) {
    if (name === head && cfg.tieWordEmbeddings && !opts.untie) continue;
    const transposed = family.gguf.transposed(name);
    const shape = transposed ? [hfShape[1]!, hfShape[0]!] : hfShape;
    const rowLen = shape[shape.length - 1]!;
    const type: GgufWriteType =
      shape.length === 1 ? "f32" : dtype === "q8_0" && rowLen % 32 !== 0 ? "f16" : dtype;
    const ropeHeads = ggufRopeHeads(cfg, name);
    out.push({
      name: ggufName(cfg, name),
      shape,
      type,
      data: () => {
        let w = opts.override?.get(name) ?? model.weights.readFloat32(name);
        if (transposed) w = transpose(w, hfShape[0]!, hfShape[1]!);
        if (ropeHeads !== null) w = permuteRopeRows(w, ropeHeads, shape.length === 1 ? 1 : rowLen, "fromHf");
        return w;
      },
    });
  }
  // Llama 3.1's rope scaling is a table of per-frequency divisors in llama.cpp (rope_freqs.weight),
  // as its converter writes it: unscaled frequency / scaled frequency.
  if (cfg.ropeScaling?.type === "llama3") {
    const scaled = ropeInverseFrequencies(cfg);
    const plain = ropeInverseFrequencies({ ...cfg, ropeScaling: null });
    out.push({
      name: "rope_freqs.weight",
      shape: [cfg.headDim / 2],
      type: "f32",
      data: () => Float32Array.from(plain, (f, i) => f / scaled[i]!),
    });
  }
  return out;
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c]!;
  return t;
}

/** Writes `model` (optionally with merged tensors) as a llama.cpp GGUF file at `out`, atomically. */
export function exportGguf(model: HfModel, out: string, opts: ExportGgufOptions = {}): void {
  const cfg = model.config;
  refuseUnsupported(cfg, join(model.dir, "config.json"));
  const arch = ggufArchitecture(cfg);
  const dtype = opts.dtype ?? "f32";
  const name = opts.name ?? model.dir.split(/[\\/]/).filter(Boolean).pop() ?? "model";
  const metadata: GgufMeta[] = [
    meta.str("general.architecture", arch),
    meta.str("general.type", "model"),
    meta.str("general.name", name),
    meta.u32("general.file_type", FILE_TYPE[dtype]),
    meta.u32("general.quantization_version", 2),
    ...hparams(cfg, arch),
    ...ggufTokenizerMetadata(model.dir, cfg),
  ];
  writeGguf(out, metadata, ggufTensors(model, opts));
}

/** End-of-turn markers a chat template may close turns with; Ollama should stop on them. */
const END_MARKERS = ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>"];

/**
 * An Ollama Modelfile for an exported GGUF: FROM the model file (and ADAPTER the adapter file), both
 * relative to the Modelfile's folder, and a PARAMETER stop line for the EOS token and for each end
 * marker the chat template uses. Ollama reads the chat template from the GGUF's tokenizer.chat_template.
 */
export function ollamaModelfile(dir: string, from: string, adapter?: string): string {
  const tc = readJson(join(dir, "tokenizer_config.json"), false) ?? {};
  const stops = new Set<string>();
  const eos = tokenText(tc["eos_token"]);
  if (eos) stops.add(eos);
  const template = typeof tc["chat_template"] === "string" ? tc["chat_template"] : "";
  for (const m of END_MARKERS) if (template.includes(m)) stops.add(m);
  const lines = [`FROM ${from}`];
  if (adapter !== undefined) lines.push(`ADAPTER ${adapter}`);
  for (const s of stops) lines.push(`PARAMETER stop ${JSON.stringify(s)}`);
  return `${lines.join("\n")}\n`;
}
