/**
 * Readers for Karpathy's llama2.c files: the model checkpoint (run.c's "legacy" version-0 format,
 * e.g. stories260K.bin) and the tokenizer (tokenizer.bin / tok512.bin).
 *
 * Checkpoint: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; a negative vocab_size means the classifier is not tied to the embedding), then float32
 * tensors, each in PyTorch [out, in] row-major order, as run.c's memory_map_weights maps them:
 *   token_embedding [vocab, dim]; rms_att [layers, dim]; wq [layers, dim, dim];
 *   wk [layers, kv_dim, dim]; wv [layers, kv_dim, dim]; wo [layers, dim, dim]; rms_ffn [layers, dim];
 *   w1 [layers, hidden, dim]; w2 [layers, dim, hidden]; w3 [layers, hidden, dim]; rms_final [dim];
 *   freq_cis_real, freq_cis_imag [seq_len, head_size/2] (unused, skipped); wcls [vocab, dim] if untied.
 * (kv_dim = n_kv_heads * dim / n_heads.) stories260K.bin is exactly 28 + 4·264,128 bytes.
 *
 * Rotary layout: llama2.c (like Meta's original Llama code and llama.cpp) rotates interleaved
 * pairs of each head, Hugging Face's Llama rotates halves; `readLlama2cCheckpoint` permutes the
 * q_proj/k_proj rows to HF's layout by default (rope-rows.ts, n_heads for q and n_kv_heads for k).
 *
 * Tokenizer: int32 max_token_length, then per token: float32 score, int32 byte length, bytes.
 * The vocabulary size is not stored (run.c takes it from the model); it is read to end of file
 * unless given. llama2.c's exporter writes SentencePiece pieces with "▁" replaced by " " and BOS/EOS
 * as "\n<s>\n" / "\n</s>\n"; byte pieces stay "<0xXX>".
 */

import { closeSync, fstatSync, readSync } from "node:fs";
import { FileFormatError } from "../util/errors.js";
import { openForRead } from "../util/files.js";
import { permuteRopeRows } from "./rope-rows.js";

export interface Llama2cConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Always positive here (the sign in the file is reported as `sharedClassifier`). */
  vocabSize: number;
  seqLen: number;
  /** true when the classifier is the token embedding (vocab_size > 0 in the file). */
  sharedClassifier: boolean;
  headDim: number;
}

export interface F32Tensor {
  /** Row-major (PyTorch) shape. */
  shape: number[];
  data: Float32Array;
}

export interface Llama2cCheckpoint {
  config: Llama2cConfig;
  /**
   * Weights under Hugging Face Llama names, in file order: model.embed_tokens.weight,
   * model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm,
   * mlp.{gate,down,up}_proj}.weight, model.norm.weight, and lm_head.weight only when untied.
   */
  tensors: Map<string, F32Tensor>;
  /** Whether q_proj/k_proj rows were permuted to HF's rotate_half layout. */
  hfRopeLayout: boolean;
}

export interface ReadLlama2cOptions {
  /** Permute q/k rows into HF's rotate_half layout (default true). false keeps llama2.c's layout. */
  hfRopeLayout?: boolean;
}

const HEADER_BYTES = 28;

function readExact(fd: number, path: string, buf: Uint8Array, position: number, what: string): void {
  let got = 0;
  while (got < buf.length) {
    const r = readSync(fd, buf, got, buf.length - got, position + got);
    if (r === 0) break;
    got += r;
  }
  if (got < buf.length) {
    throw new FileFormatError(path, `truncated: ${what} needs ${buf.length} bytes at offset ${position}`);
  }
}

/** The size of an open file; a directory (which opens fine on Linux, then fails on read with a bare EISDIR) or a device is refused. */
function regularFileSize(fd: number, path: string): number {
  const stat = fstatSync(fd);
  if (!stat.isFile()) throw new FileFormatError(path, "not a file (a directory or a device?)");
  return stat.size;
}

/** Parses and checks the 7-int32 header of a llama2.c checkpoint. */
export function parseLlama2cHeader(path: string, header: Uint8Array): Llama2cConfig {
  if (header.length < HEADER_BYTES) {
    throw new FileFormatError(
      path,
      `truncated llama2.c checkpoint: ${header.length} bytes, the header needs 28`,
    );
  }
  const dv = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  if (dv.getUint32(0, true) === 0x616b3432) {
    throw new FileFormatError(
      path,
      `llama2.c export version ${dv.getInt32(4, true)} ("ak42" header) is not supported; only run.c's legacy version-0 format`,
    );
  }
  const v = Array.from({ length: 7 }, (_, i) => dv.getInt32(i * 4, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = v as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const bad = (why: string) =>
    new FileFormatError(
      path,
      `not a llama2.c checkpoint (header dim=${dim} hidden_dim=${hiddenDim} n_layers=${nLayers} n_heads=${nHeads} n_kv_heads=${nKvHeads} vocab_size=${vocabRaw} seq_len=${seqLen}: ${why})`,
    );
  if (
    dim <= 0 ||
    hiddenDim <= 0 ||
    nLayers <= 0 ||
    nHeads <= 0 ||
    nKvHeads <= 0 ||
    seqLen <= 0 ||
    vocabRaw === 0
  ) {
    throw bad("sizes must be positive");
  }
  if (dim % nHeads !== 0) throw bad("dim is not a multiple of n_heads");
  if (nHeads % nKvHeads !== 0) throw bad("n_heads is not a multiple of n_kv_heads");
  const headDim = dim / nHeads;
  if (headDim % 2 !== 0) throw bad("head size must be even for RoPE");
  return {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: Math.abs(vocabRaw),
    seqLen,
    sharedClassifier: vocabRaw > 0,
    headDim,
  };
}

/** The tensor layout of a checkpoint: [name, shape] in file order; freq_cis entries have a null name. */
function layout(c: Llama2cConfig): { name: string | null; perLayer: string | null; shape: number[] }[] {
  const kvDim = c.nKvHeads * c.headDim;
  const L = c.nLayers;
  const e: { name: string | null; perLayer: string | null; shape: number[] }[] = [
    { name: "model.embed_tokens.weight", perLayer: null, shape: [c.vocabSize, c.dim] },
    { name: null, perLayer: "input_layernorm.weight", shape: [L, c.dim] },
    { name: null, perLayer: "self_attn.q_proj.weight", shape: [L, c.dim, c.dim] },
    { name: null, perLayer: "self_attn.k_proj.weight", shape: [L, kvDim, c.dim] },
    { name: null, perLayer: "self_attn.v_proj.weight", shape: [L, kvDim, c.dim] },
    { name: null, perLayer: "self_attn.o_proj.weight", shape: [L, c.dim, c.dim] },
    { name: null, perLayer: "post_attention_layernorm.weight", shape: [L, c.dim] },
    { name: null, perLayer: "mlp.gate_proj.weight", shape: [L, c.hiddenDim, c.dim] },
    { name: null, perLayer: "mlp.down_proj.weight", shape: [L, c.dim, c.hiddenDim] },
    { name: null, perLayer: "mlp.up_proj.weight", shape: [L, c.hiddenDim, c.dim] },
    { name: "model.norm.weight", perLayer: null, shape: [c.dim] },
    { name: null, perLayer: null, shape: [c.seqLen, c.headDim / 2] }, // freq_cis_real
    { name: null, perLayer: null, shape: [c.seqLen, c.headDim / 2] }, // freq_cis_imag
  ];
  if (!c.sharedClassifier) e.push({ name: "lm_head.weight", perLayer: null, shape: [c.vocabSize, c.dim] });
  return e;
}

/** Number of float32 values after the header for a config (the file holds 28 + 4·n bytes). */
export function llama2cFloatCount(c: Llama2cConfig): number {
  return layout(c).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
}

/** Reads a llama2.c checkpoint (run.c format) into HF-named float32 tensors. */
export function readLlama2cCheckpoint(path: string, options: ReadLlama2cOptions = {}): Llama2cCheckpoint {
  const hfRopeLayout = options.hfRopeLayout ?? true;
  const fd = openForRead(path);
  try {
    const size = regularFileSize(fd, path);
    const header = new Uint8Array(Math.min(HEADER_BYTES, size));
    readExact(fd, path, header, 0, "header");
    const config = parseLlama2cHeader(path, header);
    const expected = HEADER_BYTES + 4 * llama2cFloatCount(config);
    if (size !== expected) {
      const c = config;
      throw new FileFormatError(
        path,
        `${size < expected ? "truncated" : "unexpected size for a"} llama2.c checkpoint: ${size} bytes, but dim=${c.dim} hidden_dim=${c.hiddenDim} n_layers=${c.nLayers} n_heads=${c.nHeads} n_kv_heads=${c.nKvHeads} vocab_size=${c.vocabSize} (${c.sharedClassifier ? "tied" : "untied"}) seq_len=${c.seqLen} needs ${expected}`,
      );
    }
    const tensors = new Map<string, F32Tensor>();
    let pos = HEADER_BYTES;
    for (const t of layout(config)) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (t.name === null && t.perLayer === null) {
        pos += 4 * n;
        continue;
      }
      const data = new Float32Array(n);
      readExact(fd, path, new Uint8Array(data.buffer), pos, t.name ?? t.perLayer!);
      pos += 4 * n;
      if (t.perLayer === null) {
        tensors.set(t.name!, { shape: t.shape, data });
        continue;
      }
      const inner = t.shape.slice(1);
      const per = n / config.nLayers;
      for (let l = 0; l < config.nLayers; l++) {
        let w: Float32Array = data.slice(l * per, (l + 1) * per);
        if (hfRopeLayout && t.perLayer === "self_attn.q_proj.weight")
          w = permuteRopeRows(w, config.nHeads, config.dim, "toHf");
        if (hfRopeLayout && t.perLayer === "self_attn.k_proj.weight")
          w = permuteRopeRows(w, config.nKvHeads, config.dim, "toHf");
        tensors.set(`model.layers.${l}.${t.perLayer}`, { shape: inner, data: w });
      }
    }
    // Order: per layer all of its tensors, like HF checkpoints list them.
    const ordered = new Map<string, F32Tensor>();
    ordered.set("model.embed_tokens.weight", tensors.get("model.embed_tokens.weight")!);
    for (let l = 0; l < config.nLayers; l++) {
      for (const k of tensors.keys()) if (k.startsWith(`model.layers.${l}.`)) ordered.set(k, tensors.get(k)!);
    }
    ordered.set("model.norm.weight", tensors.get("model.norm.weight")!);
    if (!config.sharedClassifier) ordered.set("lm_head.weight", tensors.get("lm_head.weight")!);
    return { config, tensors: ordered, hfRopeLayout };
  } finally {
    closeSync(fd);
  }
}

/** A Hugging Face LlamaForCausalLM config.json object for a llama2.c model. */
export function llama2cHfConfig(c: Llama2cConfig): Record<string, unknown> {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: "silu",
    tie_word_embeddings: c.sharedClassifier,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: "float32",
  };
}

export interface Llama2cVocab {
  maxTokenLength: number;
  /** Pieces as stored (UTF-8 decoded; spaces, not "▁"; BOS/EOS as "\n<s>\n" / "\n</s>\n"). */
  tokens: string[];
  /** Raw bytes of each piece. */
  tokenBytes: Uint8Array[];
  scores: Float32Array;
}

/**
 * Reads a llama2.c tokenizer file. `vocabSize` (from the model header) is optional: without it
 * tokens are read until the end of the file.
 */
export function readLlama2cTokenizer(path: string, vocabSize?: number): Llama2cVocab {
  const fd = openForRead(path);
  let buf: Buffer;
  try {
    const size = regularFileSize(fd, path);
    buf = Buffer.alloc(size);
    readExact(fd, path, buf, 0, "tokenizer");
  } finally {
    closeSync(fd);
  }
  if (buf.length < 4) throw new FileFormatError(path, `truncated llama2.c tokenizer: ${buf.length} bytes`);
  const maxTokenLength = buf.readInt32LE(0);
  if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) {
    throw new FileFormatError(path, `not a llama2.c tokenizer (max_token_length ${maxTokenLength})`);
  }
  const tokens: string[] = [];
  const tokenBytes: Uint8Array[] = [];
  const scores: number[] = [];
  const dec = new TextDecoder("utf-8");
  let p = 4;
  while (vocabSize === undefined ? p < buf.length : tokens.length < vocabSize) {
    const i = tokens.length;
    if (p + 8 > buf.length) {
      throw new FileFormatError(path, `truncated llama2.c tokenizer: token ${i} header at offset ${p}`);
    }
    const score = buf.readFloatLE(p);
    const len = buf.readInt32LE(p + 4);
    p += 8;
    if (len < 0 || len > maxTokenLength) {
      throw new FileFormatError(
        path,
        `bad length ${len} for token ${i} (max_token_length ${maxTokenLength})`,
      );
    }
    if (p + len > buf.length) {
      throw new FileFormatError(
        path,
        `truncated llama2.c tokenizer: token ${i} needs ${len} bytes at offset ${p}`,
      );
    }
    const bytes = new Uint8Array(buf.subarray(p, p + len));
    p += len;
    tokens.push(dec.decode(bytes));
    tokenBytes.push(bytes);
    scores.push(score);
  }
  return { maxTokenLength, tokens, tokenBytes, scores: Float32Array.from(scores) };
}
