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
 * - the tokenizer as tokenizer.ggml.* metadata (see ggufTokenizerMetadata), so llama.cpp tokenizes
 *   as lora-ts does.
 * Merged exports give the merged tensors as `override` (lora/export-gguf.ts); models/ never imports lora/.
 */
import { readFileSync } from "node:fs";
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
import { type ModelConfig, ropeInverseFrequencies } from "./config.js";
import { familyOf, ggufTensorName } from "./family.js";
import type { HfModel } from "./open-model.js";

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

type Json = Record<string, unknown>;

function readJson(path: string, required: boolean): Json | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new LoraTsError(`${path}: cannot read (${(e as Error).message.split("\n")[0]})`);
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new LoraTsError(`${path}: not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
}

/** llama.cpp's token types (llama_token_type / GGUF tokenizer.ggml.token_type). */
const TT = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

const tokenText = (t: unknown): string | null =>
  typeof t === "string"
    ? t
    : t && typeof (t as Json)["content"] === "string"
      ? ((t as Json)["content"] as string)
      : null;

/** GPT-2's split regex, as HF's ByteLevel pre-tokenizer uses it with use_regex (llama.cpp pre "gpt-2"). */
function isGpt2ByteLevel(pre: unknown): boolean {
  const p = pre as Json | null;
  return p?.["type"] === "ByteLevel" && p["use_regex"] !== false && p["add_prefix_space"] !== true;
}

/** A SentencePiece-BPE tokenizer.json (Llama 2, io/tokenizer-json.ts spmTokenizerJson): byte fallback and "▁". */
function isSpm(tj: Json, model: Json): boolean {
  const norm = JSON.stringify(tj["normalizer"] ?? null);
  return (
    model["byte_fallback"] === true &&
    norm.includes('"Prepend"') &&
    norm.includes("▁") &&
    tj["pre_tokenizer"] == null
  );
}

/**
 * tokenizer.ggml.* metadata from tokenizer.json + tokenizer_config.json, for the two kinds lora-ts
 * tokenizes: byte-level BPE with GPT-2's pre-tokenizer (model "gpt2", pre "gpt-2": tokens, merges) and
 * SentencePiece-BPE with byte fallback (model "llama": tokens, scores). llama.cpp's SPM merges the
 * adjacent pair whose joined piece scores highest, HF's BPE the pair of lowest merge rank; a piece's
 * score is therefore minus the rank of its first merge, which makes the two pick the same pairs.
 * The vocabulary is padded to vocab_size with unused "[PAD<i>]" tokens (llama.cpp needs one token
 * per embedding row). Any other tokenizer is refused in one line.
 */
export function ggufTokenizerMetadata(dir: string, cfg: ModelConfig): GgufMeta[] {
  const tjPath = join(dir, "tokenizer.json");
  const tj = readJson(tjPath, true)!;
  const tc = readJson(join(dir, "tokenizer_config.json"), false) ?? {};
  const model = (tj["model"] ?? {}) as Json;
  if (model["type"] !== "BPE") {
    throw new LoraTsError(
      `${tjPath}: tokenizer model ${String(model["type"])} cannot be exported to GGUF (only BPE)`,
    );
  }
  const vocab = (model["vocab"] ?? {}) as Record<string, number>;
  const added = Array.isArray(tj["added_tokens"]) ? (tj["added_tokens"] as Json[]) : [];
  const size = Math.max(
    cfg.vocabSize,
    ...Object.values(vocab).map((i) => i + 1),
    ...added.map((a) => (a["id"] as number) + 1),
  );
  if (size > cfg.vocabSize) {
    throw new LoraTsError(`${tjPath}: ${size} tokens, more than the model's vocab_size ${cfg.vocabSize}`);
  }
  const tokens: (string | null)[] = new Array(size).fill(null);
  const types = new Int32Array(size).fill(TT.NORMAL);
  for (const [t, i] of Object.entries(vocab)) tokens[i] = t;
  for (const a of added) {
    const i = a["id"] as number;
    tokens[i] = a["content"] as string;
    types[i] = a["special"] === true ? TT.CONTROL : TT.USER_DEFINED;
  }
  for (let i = 0; i < size; i++) {
    if (tokens[i] === null) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TT.UNUSED;
    }
  }
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (!ids.has(t!)) ids.set(t!, i);
  });
  const rawMerges = (model["merges"] ?? []) as (string | [string, string])[];
  const merges = rawMerges.map((m) => (typeof m === "string" ? m : `${m[0]} ${m[1]}`));
  const out: GgufMeta[] = [];
  const spm = isSpm(tj, model);
  if (spm) {
    out.push(meta.str("tokenizer.ggml.model", "llama"), meta.str("tokenizer.ggml.pre", "default"));
    const scores = new Float32Array(size).fill(-1e9);
    for (let i = 0; i < size; i++)
      if (/^<0x[0-9A-F]{2}>$/.test(tokens[i]!) && types[i] === TT.NORMAL) types[i] = TT.BYTE;
    const unk = ids.get(String(model["unk_token"] ?? ""));
    if (unk !== undefined) types[unk] = TT.UNKNOWN;
    rawMerges.forEach((m, rank) => {
      const [l, r] = typeof m === "string" ? m.split(" ") : m;
      const id = ids.get(`${l}${r}`);
      if (id !== undefined && scores[id]! < -rank) scores[id] = -rank;
    });
    out.push(
      meta.strs("tokenizer.ggml.tokens", tokens as string[]),
      meta.f32s("tokenizer.ggml.scores", scores),
    );
    out.push(
      meta.i32s("tokenizer.ggml.token_type", types),
      meta.bool("tokenizer.ggml.add_space_prefix", true),
    );
    if (unk !== undefined) out.push(meta.u32("tokenizer.ggml.unknown_token_id", unk));
  } else if (
    isGpt2ByteLevel(tj["pre_tokenizer"]) &&
    tj["normalizer"] == null &&
    model["byte_fallback"] !== true
  ) {
    out.push(meta.str("tokenizer.ggml.model", "gpt2"), meta.str("tokenizer.ggml.pre", "gpt-2"));
    out.push(
      meta.strs("tokenizer.ggml.tokens", tokens as string[]),
      meta.i32s("tokenizer.ggml.token_type", types),
    );
    out.push(meta.strs("tokenizer.ggml.merges", merges));
  } else {
    throw new LoraTsError(
      `${tjPath}: this tokenizer (normalizer/pre-tokenizer) cannot be exported to GGUF; only SentencePiece-BPE with byte fallback and GPT-2 byte-level BPE can`,
    );
  }
  const idOf = (key: string): number | undefined => {
    const t = tokenText(tc[key]);
    return t === null ? undefined : ids.get(t);
  };
  const bos = idOf("bos_token") ?? cfg.bosTokenId ?? undefined;
  const eos = idOf("eos_token") ?? cfg.eosTokenIds[0];
  const pad = idOf("pad_token");
  if (bos !== undefined) out.push(meta.u32("tokenizer.ggml.bos_token_id", bos));
  if (eos !== undefined) out.push(meta.u32("tokenizer.ggml.eos_token_id", eos));
  if (pad !== undefined) out.push(meta.u32("tokenizer.ggml.padding_token_id", pad));
  // The BOS lora-ts prepends: tokenizer_config's add_bos_token, else the SPM post-processor's template.
  const addBos =
    typeof tc["add_bos_token"] === "boolean" ? tc["add_bos_token"] : spm && tj["post_processor"] != null;
  out.push(
    meta.bool("tokenizer.ggml.add_bos_token", addBos),
    meta.bool("tokenizer.ggml.add_eos_token", tc["add_eos_token"] === true),
  );
  if (typeof tc["chat_template"] === "string")
    out.push(meta.str("tokenizer.chat_template", tc["chat_template"]));
  return out;
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
