/**
 * Writers for the fuzz seeds the project has no writer for: GGUF (v3, little-endian, every metadata
 * value type) and llama2.c checkpoints and tokenizers. `tinyLlamaGguf` is a complete, convertible
 * llama model with a SentencePiece vocabulary, so mutations of it reach every check of the reader,
 * the tokenizer builder and the converter.
 */
import { GgufValueType } from "../../src/io/gguf.js";

/** A metadata value as written: its type, and for arrays the element type. */
export type GgufWriteValue =
  | {
      type: Exclude<GgufValueType, GgufValueType.ARRAY | GgufValueType.STRING>;
      value: number | bigint | boolean;
    }
  | { type: GgufValueType.STRING; value: string }
  | { type: GgufValueType.ARRAY; itemType: GgufValueType; items: GgufWriteValue[] };

export interface GgufWriteTensor {
  name: string;
  /** GGUF dims, innermost first. */
  dims: (number | bigint)[];
  type: number;
  /** Offset in the data section; default: packed after the previous tensor, aligned. */
  offset?: number | bigint;
  data: Uint8Array;
}

class Bytes {
  private parts: Buffer[] = [];
  length = 0;
  raw(b: Uint8Array): void {
    this.parts.push(Buffer.from(b));
    this.length += b.length;
  }
  fixed(n: number, write: (b: Buffer) => void): void {
    const b = Buffer.alloc(n);
    write(b);
    this.raw(b);
  }
  u32(v: number): void {
    this.fixed(4, (b) => b.writeUInt32LE(v >>> 0));
  }
  u64(v: number | bigint): void {
    this.fixed(8, (b) => b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v))));
  }
  str(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.raw(b);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A value as a 64-bit integer, wrapping like a C cast (NaN and infinities as 0). */
function int64(n: number | bigint): bigint {
  if (typeof n === "bigint") return n;
  return Number.isFinite(n) ? BigInt(Math.trunc(n)) : 0n;
}

function writeScalar(w: Bytes, type: GgufValueType, v: number | bigint | boolean): void {
  const n = typeof v === "boolean" ? Number(v) : v;
  switch (type) {
    case GgufValueType.UINT8:
    case GgufValueType.BOOL:
      w.fixed(1, (b) => b.writeUInt8(Number(n) & 0xff));
      break;
    case GgufValueType.INT8:
      w.fixed(1, (b) => b.writeInt8(((Number(n) + 128) & 0xff) - 128));
      break;
    case GgufValueType.UINT16:
      w.fixed(2, (b) => b.writeUInt16LE(Number(n) & 0xffff));
      break;
    case GgufValueType.INT16:
      w.fixed(2, (b) => b.writeInt16LE(((Number(n) + 0x8000) & 0xffff) - 0x8000));
      break;
    case GgufValueType.UINT32:
      w.fixed(4, (b) => b.writeUInt32LE(Number(n) >>> 0));
      break;
    case GgufValueType.INT32:
      w.fixed(4, (b) => b.writeInt32LE(Number(n) | 0));
      break;
    case GgufValueType.FLOAT32:
      w.fixed(4, (b) => b.writeFloatLE(Number(n)));
      break;
    case GgufValueType.FLOAT64:
      w.fixed(8, (b) => b.writeDoubleLE(Number(n)));
      break;
    case GgufValueType.UINT64:
      w.fixed(8, (b) => b.writeBigUInt64LE(BigInt.asUintN(64, int64(n))));
      break;
    case GgufValueType.INT64:
      w.fixed(8, (b) => b.writeBigInt64LE(BigInt.asIntN(64, int64(n))));
      break;
    default:
      break; // an unknown type has no value bytes we could know
  }
}

function writeValue(w: Bytes, v: GgufWriteValue): void {
  if (v.type === GgufValueType.STRING) w.str(v.value);
  else if (v.type === GgufValueType.ARRAY) {
    w.u32(v.itemType);
    w.u64(v.items.length);
    for (const it of v.items) writeValue(w, it);
  } else writeScalar(w, v.type, v.value);
}

/** A GGUF file: header, metadata, tensor infos, padding to `alignment`, tensor data. */
export function writeGguf(
  kvs: [string, GgufWriteValue][],
  tensors: GgufWriteTensor[],
  opts: { alignment?: number; version?: number; magic?: string; tensorCount?: bigint; kvCount?: bigint } = {},
): Buffer {
  const align = opts.alignment ?? 32;
  const w = new Bytes();
  w.raw(Buffer.from(opts.magic ?? "GGUF", "latin1"));
  w.u32(opts.version ?? 3);
  w.u64(opts.tensorCount ?? tensors.length);
  w.u64(opts.kvCount ?? kvs.length);
  for (const [k, v] of kvs) {
    w.str(k);
    w.u32(v.type);
    writeValue(w, v);
  }
  let next = 0;
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(t.offset ?? next);
    next += Math.ceil(t.data.length / align) * align;
  }
  w.raw(new Uint8Array((align - (w.length % align)) % align));
  for (const t of tensors) {
    w.raw(t.data);
    w.raw(new Uint8Array((align - (t.data.length % align)) % align));
  }
  return w.done();
}

export const u32 = (value: number): GgufWriteValue => ({ type: GgufValueType.UINT32, value });
export const f32 = (value: number): GgufWriteValue => ({ type: GgufValueType.FLOAT32, value });
export const str = (value: string): GgufWriteValue => ({ type: GgufValueType.STRING, value });
export const arr = (itemType: GgufValueType, items: GgufWriteValue[]): GgufWriteValue => ({
  type: GgufValueType.ARRAY,
  itemType,
  items,
});

/** Deterministic small float32 values. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 0.2;
  }
  return out;
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The tiny llama's sizes: 1 layer, hidden 8, 2 heads of 4 (1 key/value head), 12 vocabulary pieces. */
const T = { hidden: 8, heads: 2, kvHeads: 1, headDim: 4, inter: 12, layers: 1 };
export const TINY_VOCAB = ["<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "▁b", "ab", "▁ab", "<0x0A>", "c"];

/** A complete llama GGUF (F32, untied output, SentencePiece tokenizer metadata) that converts. */
export function tinyLlamaGguf(opts: { tied?: boolean; over?: Record<string, GgufWriteValue> } = {}): Buffer {
  const vocab = TINY_VOCAB.length;
  const shapes: [string, number[]][] = [
    ["token_embd.weight", [vocab, T.hidden]],
    ["output_norm.weight", [T.hidden]],
  ];
  if (!opts.tied) shapes.push(["output.weight", [vocab, T.hidden]]);
  for (let l = 0; l < T.layers; l++) {
    shapes.push(
      [`blk.${l}.attn_norm.weight`, [T.hidden]],
      [`blk.${l}.attn_q.weight`, [T.heads * T.headDim, T.hidden]],
      [`blk.${l}.attn_k.weight`, [T.kvHeads * T.headDim, T.hidden]],
      [`blk.${l}.attn_v.weight`, [T.kvHeads * T.headDim, T.hidden]],
      [`blk.${l}.attn_output.weight`, [T.hidden, T.heads * T.headDim]],
      [`blk.${l}.ffn_norm.weight`, [T.hidden]],
      [`blk.${l}.ffn_gate.weight`, [T.inter, T.hidden]],
      [`blk.${l}.ffn_up.weight`, [T.inter, T.hidden]],
      [`blk.${l}.ffn_down.weight`, [T.hidden, T.inter]],
    );
  }
  const tensors = shapes.map(([name, shape], i) => ({
    name,
    dims: [...shape].reverse(),
    type: 0,
    data: bytesOf(
      values(
        shape.reduce((a, b) => a * b, 1),
        i + 1,
      ),
    ),
  }));
  const types = TINY_VOCAB.map((t, i) => (i === 0 ? 2 : i < 3 ? 3 : t.startsWith("<0x") ? 6 : 1));
  const kvs: [string, GgufWriteValue][] = [
    ["general.architecture", str("llama")],
    ["general.alignment", u32(32)],
    ["llama.context_length", u32(64)],
    ["llama.embedding_length", u32(T.hidden)],
    ["llama.feed_forward_length", u32(T.inter)],
    ["llama.block_count", u32(T.layers)],
    ["llama.attention.head_count", u32(T.heads)],
    ["llama.attention.head_count_kv", u32(T.kvHeads)],
    ["llama.rope.dimension_count", u32(T.headDim)],
    ["llama.rope.freq_base", f32(10000)],
    ["llama.attention.layer_norm_rms_epsilon", f32(1e-5)],
    ["tokenizer.ggml.model", str("llama")],
    ["tokenizer.ggml.tokens", arr(GgufValueType.STRING, TINY_VOCAB.map(str))],
    [
      "tokenizer.ggml.scores",
      arr(
        GgufValueType.FLOAT32,
        TINY_VOCAB.map((_, i) => f32(-i)),
      ),
    ],
    [
      "tokenizer.ggml.token_type",
      arr(
        GgufValueType.INT32,
        types.map((value) => ({ type: GgufValueType.INT32, value })),
      ),
    ],
    ["tokenizer.ggml.bos_token_id", u32(1)],
    ["tokenizer.ggml.eos_token_id", u32(2)],
    ["tokenizer.chat_template", str("{% for m in messages %}{{ m['content'] }}{% endfor %}")],
  ];
  const over = opts.over ?? {};
  return writeGguf(
    kvs.map(([k, v]) => [k, over[k] ?? v]),
    tensors,
  );
}

/** A GPT-2-style GGUF vocabulary (tokenizer.ggml.model "gpt2" with merges), no tensors. */
export function gpt2TokenizerGguf(): Buffer {
  const tokens = ["<|endoftext|>", "a", "b", "Ġ", "ab", "Ġa"];
  return writeGguf(
    [
      ["general.architecture", str("gpt2")],
      ["tokenizer.ggml.model", str("gpt2")],
      ["tokenizer.ggml.pre", str("gpt-2")],
      ["tokenizer.ggml.tokens", arr(GgufValueType.STRING, tokens.map(str))],
      ["tokenizer.ggml.merges", arr(GgufValueType.STRING, [str("a b"), str("Ġ a")])],
      ["tokenizer.ggml.bos_token_id", u32(0)],
      ["tokenizer.ggml.eos_token_id", u32(0)],
      [
        "tokenizer.ggml.token_type",
        arr(
          GgufValueType.INT32,
          tokens.map((_, i) => ({ type: GgufValueType.INT32, value: i === 0 ? 3 : 1 })),
        ),
      ],
    ],
    [],
  );
}

/** A llama2.c checkpoint (run.c's legacy format) with `vocab` pieces and one tiny layer. */
export function llama2cCheckpoint(vocab = 6, shared = true): Buffer {
  const dim = 4;
  const hidden = 6;
  const layers = 1;
  const heads = 2;
  const kvHeads = 1;
  const seqLen = 3;
  const headSize = dim / heads;
  const kvDim = (kvHeads * dim) / heads;
  const n =
    vocab * dim +
    layers * (dim + dim * dim + 2 * kvDim * dim + dim * dim + dim + 3 * hidden * dim) +
    dim +
    seqLen * headSize +
    (shared ? 0 : vocab * dim);
  const header = Buffer.alloc(28);
  const fields = [dim, hidden, layers, heads, kvHeads, shared ? vocab : -vocab, seqLen];
  fields.forEach((v, i) => {
    header.writeInt32LE(v, i * 4);
  });
  return Buffer.concat([header, Buffer.from(bytesOf(values(n, 7)))]);
}

/** A llama2.c tokenizer.bin: max_token_length, then (score, length, bytes) per piece. */
export function llama2cTokenizer(
  pieces: string[] = ["<unk>", "\n<s>\n", "\n</s>\n", " a", "b", "<0x0A>"],
): Buffer {
  const parts: Buffer[] = [];
  const max = Math.max(...pieces.map((p) => Buffer.byteLength(p)));
  const head = Buffer.alloc(4);
  head.writeInt32LE(max);
  parts.push(head);
  pieces.forEach((p, i) => {
    const b = Buffer.from(p, "utf8");
    const h = Buffer.alloc(8);
    h.writeFloatLE(-i, 0);
    h.writeInt32LE(b.length, 4);
    parts.push(h, b);
  });
  return Buffer.concat(parts);
}
