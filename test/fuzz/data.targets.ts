/**
 * Fuzz targets for data set files (data/formats.ts, data/examples.ts): rows of every format (text,
 * prompt/completion, Alpaca, chat, ShareGPT) generated with odd field values, written as JSONL or a
 * JSON array (with BOMs, CRLF and blank lines) under each extension, and seed files of each format
 * byte-mutated; each is read with readDataset and made into training examples with a small
 * SentencePiece tokenizer, as `lora-ts train` does.
 */
import { join } from "node:path";
import fc from "fast-check";
import { readDataset } from "../../src/data/dataset-file.js";
import { buildExamples } from "../../src/data/examples.js";
import { toyTokenizer } from "../data/toy-tokenizer.js";
import { tempDir } from "../models/fixtures.js";
import type { FuzzTarget } from "./harness.js";
import { InputFile } from "./input-file.js";
import { interestingJson, mutatedBytes } from "./mutate.js";

const dir = tempDir("lora-ts-fuzz-data-");
const EXTENSIONS = [".jsonl", ".json", ".txt", ".csv", ""] as const;
const files = EXTENSIONS.map((ext) => new InputFile(join(dir, `data${ext}`)));
const tok = toyTokenizer();

interface DataInput {
  bytes: Uint8Array;
  ext: number;
  maxLength: number;
  trainOnInputs: boolean;
  alpacaAsChat: boolean;
  addBos: boolean | undefined;
}

function run(i: DataInput): void {
  const data = readDataset(files[i.ext]!.write(i.bytes));
  buildExamples(data, tok, {
    maxLength: i.maxLength,
    trainOnInputs: i.trainOnInputs,
    alpacaAsChat: i.alpacaAsChat,
    ...(i.addBos === undefined ? {} : { addBos: i.addBos }),
  });
}

const str = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom("Hello there", "How are you", "", " ", "a\nb", "<|im_end|>", "<s>", "\r\n"),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 1, arbitrary: interestingJson },
);
const message = fc.record(
  {
    role: fc.oneof(
      fc.constantFrom("system", "user", "assistant", "human", "gpt", "bot", "", "__proto__"),
      interestingJson,
    ),
    content: str,
    from: fc.constantFrom("human", "gpt", "system", "user", "assistant", "x"),
    value: str,
  },
  { requiredKeys: [] },
);
const row = fc.oneof(
  { weight: 8, arbitrary: fc.record({ text: str }, { requiredKeys: [] }) },
  { weight: 6, arbitrary: fc.record({ prompt: str, completion: str }, { requiredKeys: [] }) },
  { weight: 6, arbitrary: fc.record({ instruction: str, input: str, output: str }, { requiredKeys: [] }) },
  {
    weight: 6,
    arbitrary: fc.record({ messages: fc.oneof(fc.array(message, { maxLength: 4 }), interestingJson) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ conversations: fc.oneof(fc.array(message, { maxLength: 4 }), interestingJson) }),
  },
  { weight: 1, arbitrary: interestingJson },
);

/** Rows as a file: JSONL or a JSON array, sometimes with a BOM, CRLF line ends and blank lines. */
const generatedFile = fc
  .record({
    rows: fc.array(row, { maxLength: 5 }),
    array: fc.boolean(),
    bom: fc.boolean(),
    crlf: fc.boolean(),
    blank: fc.boolean(),
  })
  .map(({ rows, array, bom, crlf, blank }) => {
    const nl = crlf ? "\r\n" : "\n";
    const lines = rows.map((r) => JSON.stringify(r) ?? "null");
    const body = array ? `[${lines.join(`,${nl}`)}]` : lines.join(blank ? nl + nl : nl);
    return new TextEncoder().encode((bom ? "\uFEFF" : "") + body);
  });

const SEEDS = [
  [{ text: "Once upon a time" }, { text: "The end" }],
  [{ prompt: "Hi", completion: " there" }],
  [
    { instruction: "Be brief", input: "", output: "Fine" },
    { instruction: "Hello", input: "you", output: "thanks" },
  ],
  [
    {
      messages: [
        { role: "system", content: "Be brief" },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello" },
      ],
    },
  ],
  [
    {
      conversations: [
        { from: "human", value: "How are you" },
        { from: "gpt", value: "Fine thanks" },
      ],
    },
  ],
].flatMap((rows) => [
  new TextEncoder().encode(rows.map((r) => JSON.stringify(r)).join("\n")),
  new TextEncoder().encode(JSON.stringify(rows, null, 1)),
]);
SEEDS.push(new TextEncoder().encode("Once upon a time there\nwas a user.\n\nThe end"));

export const dataFiles: FuzzTarget<DataInput> = {
  name: "data: dataset files",
  covers:
    "readDataset (.jsonl/.json/.txt/other, every row format) + buildExamples (truncation, BOS, trainOnInputs, alpacaAsChat, the chat loss mask); rows generated, seed files mutated",
  arbitrary: fc.record({
    bytes: fc.oneof(
      { weight: 4, arbitrary: generatedFile },
      { weight: 4, arbitrary: mutatedBytes(SEEDS) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    ),
    ext: fc.nat(EXTENSIONS.length - 1),
    maxLength: fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: 2, max: 64 }) },
      { weight: 1, arbitrary: fc.constantFrom(0, 1, 2 ** 31, 0.5, Number.NaN) },
    ),
    trainOnInputs: fc.boolean(),
    alpacaAsChat: fc.boolean(),
    addBos: fc.constantFrom(undefined, true, false),
  }),
  run,
  size: (i) => i.bytes.length,
};

export const targets = [dataFiles];
