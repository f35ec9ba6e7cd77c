/**
 * Fuzz targets for llama.cpp GGUF files (io/gguf.ts, the tokenizer built from their metadata in
 * io/tokenizer-json.ts, and the GGUF -> Hugging Face conversion models/convert-gguf.ts reads them
 * with) and llama.2c checkpoints and tokenizers (io/llama2c.ts). Inputs: GGUF files generated from
 * random metadata (every value type, nested arrays, lying counts) and tensor infos, and valid files
 * (a convertible tiny llama, a GPT-2 vocabulary, llama2.c files) byte-mutated.
 */
import { join } from "node:path";
import fc from "fast-check";
import { Tokenizer } from "../../src/data/tokenizer.js";
import { GgufFile, GgufValueType } from "../../src/io/gguf.js";
import { readLlama2cCheckpoint, readLlama2cTokenizer } from "../../src/io/llama2c.js";
import { llama2cTokenizerJson, tokenizerFromGguf } from "../../src/io/tokenizer-json.js";
import { readGgufAsHf } from "../../src/models/convert-gguf.js";
import { tempDir } from "../models/fixtures.js";
import {
  arr,
  type GgufWriteTensor,
  type GgufWriteValue,
  gpt2TokenizerGguf,
  llama2cCheckpoint,
  llama2cTokenizer,
  str,
  tinyLlamaGguf,
  u32,
  writeGguf,
} from "./gguf-writer.js";
import { allSteps, type FuzzTarget } from "./harness.js";
import { InputFile } from "./input-file.js";
import { INTERESTING_INTS, mutatedBytes, sometimes } from "./mutate.js";

const dir = tempDir("lora-ts-fuzz-gguf-");
const ggufInput = new InputFile(join(dir, "input.gguf"));
const ckptInput = new InputFile(join(dir, "input.bin"));
const tokInput = new InputFile(join(dir, "tokenizer.bin"));

/** Everything the engine reads from a GGUF file: header, tensors, tokenizer, and the conversion. */
function readGgufEverything(path: string, convert: boolean): void {
  const g = GgufFile.open(path);
  for (const t of g.tensors) {
    if (t.nbytes !== undefined) g.readTensorBytes(t.name);
    if (t.type === 0 || t.type === 1 || t.type === 30) g.readTensor(t.name);
  }
  if (g.has("tokenizer.ggml.model")) {
    const { tokenizer, config } = tokenizerFromGguf(g);
    Tokenizer.fromJSON(tokenizer, config).encode("ab a\n");
  }
  if (convert) readGgufAsHf(path);
}

const SCALAR_TYPES = [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12] as const;
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(...INTERESTING_INTS.map(Number)));
const scalar = (types: readonly number[]) =>
  fc.record({ type: fc.constantFrom(...types), value: number }) as fc.Arbitrary<GgufWriteValue>;
const gstring = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.constantFrom("llama", "gpt2", "gpt-2", "<s>", "a b", "a\nb"),
);

/** Metadata values of every type, arrays homogeneous or not, nested a few levels. */
const { value } = fc.letrec<{ value: GgufWriteValue; array: GgufWriteValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    scalar(SCALAR_TYPES),
    gstring.map(str),
    tie("array"),
    fc.record({ type: fc.integer({ min: 13, max: 300 }), value: number }) as fc.Arbitrary<GgufWriteValue>,
  ),
  array: fc.oneof(
    fc
      .constantFrom(...SCALAR_TYPES)
      .chain((t) => fc.array(scalar([t]), { maxLength: 6 }).map((items) => arr(t, items))),
    fc.array(gstring.map(str), { maxLength: 6 }).map((items) => arr(GgufValueType.STRING, items)),
    fc.array(tie("array"), { maxLength: 3 }).map((items) => arr(GgufValueType.ARRAY, items)),
    fc
      .record({ itemType: fc.nat(20), items: fc.array(tie("value"), { maxLength: 3 }) })
      .map(({ itemType, items }) => arr(itemType, items)),
  ),
}));

const KEYS = [
  "general.alignment",
  "general.architecture",
  "llama.block_count",
  "llama.embedding_length",
  "llama.attention.head_count",
  "llama.expert_count",
  "llama.rope.scaling.type",
  "tokenizer.ggml.model",
  "tokenizer.ggml.tokens",
  "tokenizer.ggml.scores",
  "tokenizer.ggml.token_type",
  "tokenizer.ggml.merges",
  "tokenizer.ggml.bos_token_id",
  "tokenizer.ggml.pre",
];
const key = fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 10 }));
const bigDim = fc.oneof(fc.nat(40), fc.constantFrom(...INTERESTING_INTS));
/** Any tensor info: dims, type and offset from anywhere, data of any length. */
const randomTensor: fc.Arbitrary<GgufWriteTensor> = fc.record(
  {
    name: fc.oneof(
      fc.constantFrom("token_embd.weight", "output.weight", "blk.0.attn_q.weight"),
      fc.string({ maxLength: 8 }),
    ),
    dims: fc.array(bigDim, { maxLength: 9 }),
    type: fc.oneof(fc.constantFrom(0, 1, 2, 8, 12, 16, 24, 28, 30, 99, 2 ** 32 - 1), fc.nat(40)),
    offset: fc.oneof(
      fc.nat(8).map((n) => n * 32),
      fc.constantFrom(...INTERESTING_INTS),
    ),
    data: fc.uint8Array({ maxLength: 64 }),
  },
  { requiredKeys: ["name", "dims", "type", "data"] },
);
/** A tensor whose data fits its dims and type (F32, F16, BF16, I8, I32, F64), packed by the writer. */
const fittingTensor: fc.Arbitrary<GgufWriteTensor> = fc
  .record({
    name: fc.string({ maxLength: 8 }),
    dims: fc.array(fc.nat(4), { maxLength: 3 }),
    type: fc.constantFrom<[number, number]>([0, 4], [1, 2], [30, 2], [24, 1], [26, 4], [28, 8]),
  })
  .map(({ name, dims, type: [type, bytes] }) => ({
    name,
    dims,
    type,
    data: new Uint8Array(dims.reduce((a, d) => a * d, 1) * bytes),
  }));
const tensor = fc.oneof(fittingTensor, randomTensor);

const generatedGguf = fc
  .record({
    kvs: fc.array(fc.tuple(key, value), { maxLength: 6 }),
    tensors: fc.array(tensor, { maxLength: 4 }),
    version: fc.oneof(
      { weight: 8, arbitrary: fc.constant(3) },
      { weight: 1, arbitrary: fc.constantFrom(1, 2, 0x03000000, 0) },
    ),
    // Mostly the true counts (undefined); now and then a lie.
    tensorCount: sometimes(fc.constantFrom(...INTERESTING_INTS)),
    kvCount: sometimes(fc.constantFrom(...INTERESTING_INTS)),
  })
  .map(({ kvs, tensors, version, tensorCount, kvCount }) => {
    const opts: Parameters<typeof writeGguf>[2] = { version };
    if (tensorCount !== undefined) opts.tensorCount = tensorCount;
    if (kvCount !== undefined) opts.kvCount = kvCount;
    return new Uint8Array(writeGguf(kvs, tensors, opts));
  });

/** A GGUF with a header as given and nothing else (for the explicit huge-size cases). */
function rawHeader(...fields: (["u32", number] | ["u64", bigint] | ["bytes", string])[]): Uint8Array {
  const parts = fields.map(([kind, v]) => {
    if (kind === "bytes") return Buffer.from(v, "latin1");
    const b = Buffer.alloc(kind === "u32" ? 4 : 8);
    if (kind === "u32") b.writeUInt32LE(v);
    else b.writeBigUInt64LE(v);
    return b;
  });
  return new Uint8Array(Buffer.concat([...parts, Buffer.alloc(64)]));
}

const HUGE: { name: string; input: Uint8Array }[] = [
  { name: "2^32 tensors", input: rawHeader(["bytes", "GGUF"], ["u32", 3], ["u64", 2n ** 32n], ["u64", 0n]) },
  {
    name: "2^60 metadata entries",
    input: rawHeader(["bytes", "GGUF"], ["u32", 3], ["u64", 0n], ["u64", 2n ** 60n]),
  },
  {
    name: "a key of 2^60 bytes",
    input: rawHeader(["bytes", "GGUF"], ["u32", 3], ["u64", 0n], ["u64", 1n], ["u64", 2n ** 60n]),
  },
  {
    name: "a key of 2^64 - 1 bytes",
    input: rawHeader(["bytes", "GGUF"], ["u32", 3], ["u64", 0n], ["u64", 1n], ["u64", 2n ** 64n - 1n]),
  },
  {
    name: "a string value of 2^40 bytes",
    input: rawHeader(
      ["bytes", "GGUF"],
      ["u32", 3],
      ["u64", 0n],
      ["u64", 1n],
      ["u64", 1n],
      ["bytes", "k"],
      ["u32", 8],
      ["u64", 2n ** 40n],
    ),
  },
  ...(
    [
      GgufValueType.UINT8,
      GgufValueType.UINT64,
      GgufValueType.STRING,
      GgufValueType.BOOL,
      GgufValueType.ARRAY,
    ] as const
  ).map((t) => ({
    name: `an array of 2^40 elements of type ${GgufValueType[t]}`,
    input: rawHeader(
      ["bytes", "GGUF"],
      ["u32", 3],
      ["u64", 0n],
      ["u64", 1n],
      ["u64", 1n],
      ["bytes", "k"],
      ["u32", GgufValueType.ARRAY],
      ["u32", t],
      ["u64", 2n ** 40n],
    ),
  })),
  {
    name: "an array of 2^30 strings in a small file",
    input: rawHeader(
      ["bytes", "GGUF"],
      ["u32", 3],
      ["u64", 0n],
      ["u64", 1n],
      ["u64", 1n],
      ["bytes", "k"],
      ["u32", 9],
      ["u32", 8],
      ["u64", 2n ** 30n],
    ),
  },
  {
    name: "an array of arrays whose first claims 2^20 bools",
    input: rawHeader(
      ["bytes", "GGUF"],
      ["u32", 3],
      ["u64", 0n],
      ["u64", 1n],
      ["u64", 1n],
      ["bytes", "k"],
      ["u32", GgufValueType.ARRAY],
      ["u32", GgufValueType.ARRAY],
      ["u64", 3n],
      ["u32", GgufValueType.BOOL],
      ["u64", 2n ** 20n],
    ),
  },
  {
    name: "a tensor of dims [2^40, 2^40]",
    input: new Uint8Array(
      writeGguf([], [{ name: "t", dims: [2n ** 40n, 2n ** 40n], type: 0, data: new Uint8Array(16) }]),
    ),
  },
  {
    name: "a tensor of dims [2^64 - 1]",
    input: new Uint8Array(
      writeGguf([], [{ name: "t", dims: [2n ** 64n - 1n], type: 0, data: new Uint8Array(16) }]),
    ),
  },
  {
    name: "a tensor at an offset beyond the file",
    input: new Uint8Array(
      writeGguf([], [{ name: "t", dims: [4], type: 0, offset: 2n ** 40n, data: new Uint8Array(16) }]),
    ),
  },
  {
    name: "a tensor at offset 2^60",
    input: new Uint8Array(
      writeGguf([], [{ name: "t", dims: [4], type: 0, offset: 2n ** 60n, data: new Uint8Array(16) }]),
    ),
  },
  {
    name: "alignment 0",
    input: new Uint8Array(
      writeGguf(
        [["general.alignment", u32(0)]],
        [{ name: "t", dims: [4], type: 0, data: new Uint8Array(16) }],
      ),
    ),
  },
];

export const ggufGenerated: FuzzTarget<Uint8Array> = {
  name: "gguf: generated files",
  covers:
    "GgufFile.open, readTensorBytes/readTensor, tokenizerFromGguf + Tokenizer.fromJSON; random metadata of every type and tensor infos, lying counts",
  arbitrary: generatedGguf,
  run: (b) => readGgufEverything(ggufInput.write(b), false),
  size: (b) => b.length,
  explicit: HUGE,
};

const GGUF_SEEDS = [tinyLlamaGguf(), tinyLlamaGguf({ tied: true }), gpt2TokenizerGguf()].map(
  (b) => new Uint8Array(b),
);

export const ggufMutated: FuzzTarget<Uint8Array> = {
  name: "gguf: mutated models",
  covers:
    "the same plus readGgufAsHf (the GGUF -> HF conversion's reading and checks) on a convertible tiny llama and a GPT-2 vocabulary, byte-mutated",
  arbitrary: mutatedBytes(GGUF_SEEDS),
  run: (b) => readGgufEverything(ggufInput.write(b), true),
  size: (b) => b.length,
  explicit: [
    {
      name: "a block count of 2^32 - 1",
      input: new Uint8Array(tinyLlamaGguf({ over: { "llama.block_count": u32(2 ** 32 - 1) } })),
    },
    {
      name: "an embedding length of 2^31",
      input: new Uint8Array(tinyLlamaGguf({ over: { "llama.embedding_length": u32(2 ** 31) } })),
    },
    {
      name: "a token of 100000 characters",
      input: new Uint8Array(
        tinyLlamaGguf({
          over: {
            "tokenizer.ggml.tokens": arr(
              GgufValueType.STRING,
              ["<unk>", "<s>", "</s>", "a".repeat(100000)].map(str),
            ),
          },
        }),
      ),
    },
  ],
};

const CKPT_SEEDS = [llama2cCheckpoint(6, true), llama2cCheckpoint(6, false)].map((b) => new Uint8Array(b));
const TOK_SEEDS = [llama2cTokenizer()].map((b) => new Uint8Array(b));

export const llama2cMutated: FuzzTarget<{ ckpt: Uint8Array; tok: Uint8Array; vocab: boolean }> = {
  name: "llama2c: mutated checkpoints and tokenizers",
  covers:
    "readLlama2cCheckpoint, readLlama2cTokenizer (with and without the model's vocab size) + llama2cTokenizerJson + Tokenizer.fromJSON, byte-mutated",
  arbitrary: fc.record({ ckpt: mutatedBytes(CKPT_SEEDS), tok: mutatedBytes(TOK_SEEDS), vocab: fc.boolean() }),
  run: ({ ckpt, tok, vocab }) => {
    let vocabSize: number | undefined;
    allSteps(
      () => {
        vocabSize = readLlama2cCheckpoint(ckptInput.write(ckpt)).config.vocabSize;
      },
      () => {
        const v = readLlama2cTokenizer(tokInput.write(tok), vocab ? vocabSize : undefined);
        Tokenizer.fromJSON(llama2cTokenizerJson(v)).encode("a b\n");
      },
    );
  },
  size: ({ ckpt, tok }) => ckpt.length + tok.length,
  explicit: [
    ...[0, 1, 2, 5, 6].map((field) => ({
      name: `checkpoint header field ${field} = 2^31 - 1`,
      input: { ckpt: withInt32(CKPT_SEEDS[0]!, field * 4, 2 ** 31 - 1), tok: TOK_SEEDS[0]!, vocab: true },
    })),
    {
      name: "vocab_size -2^31 (untied, 2^31 pieces)",
      input: { ckpt: withInt32(CKPT_SEEDS[0]!, 20, -(2 ** 31)), tok: TOK_SEEDS[0]!, vocab: true },
    },
    {
      name: "tokenizer max_token_length 2^31 - 1",
      input: { ckpt: CKPT_SEEDS[0]!, tok: withInt32(TOK_SEEDS[0]!, 0, 2 ** 31 - 1), vocab: false },
    },
    {
      name: "a piece claiming 2^31 - 1 bytes",
      input: { ckpt: CKPT_SEEDS[0]!, tok: withInt32(TOK_SEEDS[0]!, 8, 2 ** 31 - 1), vocab: false },
    },
  ],
};

/** `bytes` with the little-endian int32 at `offset` set to `v`. */
function withInt32(bytes: Uint8Array, offset: number, v: number): Uint8Array {
  const out = bytes.slice();
  new DataView(out.buffer).setInt32(offset, v, true);
  return out;
}

export const targets = [ggufGenerated, ggufMutated, llama2cMutated];
