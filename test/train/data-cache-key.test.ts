/**
 * The data cache's key, input by input (issue #18): the same inputs reuse the prepared folder; a change
 * to any input that changes what preparation writes (the data's content, its file type, the tokenizer,
 * its config and chat template, --max-length, --train-on-inputs, --columns) prepares again instead of
 * reading a stale folder; what does not change it (the file's name, --data-workers) reuses it, and
 * --packing, applied when reading, packs a cached set; --no-data-cache never touches the cache.
 */
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { dataCacheDir } from "../../src/data/data-cache.js";
import type { Tokenizer } from "../../src/data/tokenizer.js";
import { readMetrics } from "../../src/train/metrics-log.js";
import { prepareDataSet } from "../../src/train/trainer.js";
import { toyTokenizer } from "../data/toy-tokenizer.js";
import { runCli } from "../helpers/cli.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";

const root = mkdtempSync(join(tmpdir(), "lora-ts-data-cache-key-"));
const saved = process.env["LORA_TS_CACHE"];
process.env["LORA_TS_CACHE"] = join(root, "cache");
after(() => {
  if (saved === undefined) delete process.env["LORA_TS_CACHE"];
  else process.env["LORA_TS_CACHE"] = saved;
  rmSync(root, { recursive: true, force: true });
});

function write(name: string, rows: object[]): string {
  const p = join(root, name);
  writeFileSync(p, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);
  return p;
}

const ROWS = [
  { prompt: "the cat", completion: " sat on the mat" },
  { prompt: "a dog", completion: " ran to the park" },
  { prompt: "the sun", completion: " is warm" },
];

interface Inputs {
  files: string[];
  tok: Tokenizer;
  maxLength: number;
  trainOnInputs?: boolean;
  columns?: Record<string, string>;
  dataWorkers?: number;
  dataCache?: boolean;
}

/** Prepares and returns whether the cache was hit and the first example's ids and labels. */
async function run(i: Inputs): Promise<{ cached: boolean; first: string }> {
  const warnings: string[] = [];
  const set = await prepareDataSet(
    i.files,
    i.tok,
    {
      maxLength: i.maxLength,
      trainOnInputs: i.trainOnInputs,
      dataWorkers: i.dataWorkers ?? 1,
      ...(i.columns ? { columns: i.columns } : {}),
      ...(i.dataCache === false ? { dataCache: false } : {}),
    },
    "train",
    {},
    (line) => warnings.push(line),
  );
  try {
    assert.deepEqual(warnings, []);
    const ex = set.data.get(0);
    return { cached: set.preparation.cached === true, first: JSON.stringify(ex) };
  } finally {
    set.dispose();
  }
}

test("every input of the fingerprint: a change prepares again, the same inputs hit the cache", async () => {
  const data = write("data.jsonl", ROWS);
  const tok = toyTokenizer();
  const base: Inputs = { files: [data], tok, maxLength: 32 };

  const first = await run(base);
  assert.equal(first.cached, false, "a cold cache prepares");
  const again = await run(base);
  assert.equal(again.cached, true, "the same inputs reuse it");
  assert.equal(again.first, first.first, "and read back the same example");

  // What does not change the prepared data reuses it.
  const renamed = join(root, "renamed.jsonl");
  copyFileSync(data, renamed);
  assert.equal((await run({ ...base, files: [renamed] })).cached, true, "another name, same bytes");
  assert.equal((await run({ ...base, dataWorkers: 2 })).cached, true, "--data-workers");

  // Each input that changes it: a miss, then a hit for the same changed input.
  const other = write("other.jsonl", [...ROWS.slice(0, 2), { prompt: "the sun", completion: " is hot" }]);
  const asJson = join(root, "data.json"); // the same bytes, read as JSON lines through the sniffing rule
  copyFileSync(data, asJson);
  const renamedColumns = write(
    "columns.jsonl",
    ROWS.map((r) => ({ question: r.prompt, answer: r.completion })),
  );
  const changes: [string, Inputs][] = [
    ["the data's content", { ...base, files: [other] }],
    ["a second file", { ...base, files: [data, other] }],
    ["the file type", { ...base, files: [asJson] }],
    [
      "the tokenizer's chat template (tokenizer_config)",
      { ...base, tok: toyTokenizer({ chatTemplate: "{{ 'x' }}" }) },
    ],
    ["add_bos_token", { ...base, tok: toyTokenizer({ addBos: false }) }],
    ["tokenizer.json", { ...base, tok: toyTokenizerWithExtraToken() }],
    ["--max-length", { ...base, maxLength: 8 }],
    ["--train-on-inputs", { ...base, trainOnInputs: true }],
    [
      "--columns",
      { ...base, files: [renamedColumns], columns: { prompt: "question", completion: "answer" } },
    ],
  ];
  for (const [what, inputs] of changes) {
    assert.equal((await run(inputs)).cached, false, `${what}: prepares again`);
    assert.equal((await run(inputs)).cached, true, `${what}: then hits`);
  }
  assert.equal((await run(base)).cached, true, "the first inputs still hit");
  // One folder per distinct key, and no temporary folder left behind.
  assert.equal(readdirSync(dataCacheDir()).length, 1 + changes.length);
});

test("--no-data-cache neither reads nor writes the cache", async () => {
  rmSync(dataCacheDir(), { recursive: true, force: true });
  const data = write("nocache.jsonl", ROWS);
  const r = await run({ files: [data], tok: toyTokenizer(), maxLength: 32, dataCache: false });
  assert.equal(r.cached, false);
  assert.equal(existsSync(dataCacheDir()), false);
});

test("a damaged cached folder is prepared again, with a warning", async () => {
  const data = write("damaged.jsonl", ROWS);
  const tok = toyTokenizer();
  await run({ files: [data], tok, maxLength: 32 });
  const before = new Set(readdirSync(dataCacheDir()));
  assert.ok(before.size >= 1);
  // Cut every ids file in the cache short: whichever folder is this data set's is now damaged.
  for (const key of before) {
    const ids = join(dataCacheDir(), key, "ids.bin");
    if (existsSync(ids)) writeFileSync(ids, Buffer.alloc(3));
  }
  const warnings: string[] = [];
  const set = await prepareDataSet([data], tok, { maxLength: 32, dataWorkers: 1 }, "train", {}, (l) =>
    warnings.push(l),
  );
  try {
    assert.equal(set.preparation.cached === true, false);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /^data cache .*: unreadable \(.*\); preparing the data again$/);
    assert.ok(set.data.size > 0);
  } finally {
    set.dispose();
  }
});

/** The toy tokenizer with one more vocabulary entry: a different tokenizer.json, the same config. */
function toyTokenizerWithExtraToken(): Tokenizer {
  const t = toyTokenizer();
  const json = structuredClone(t.tokenizerJson) as { added_tokens: { id: number; content: string }[] };
  const next = Math.max(...json.added_tokens.map((a) => a.id), t.vocabSize - 1) + 1;
  json.added_tokens.push({
    id: next,
    content: "<|extra|>",
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  } as never);
  return (t.constructor as typeof Tokenizer).fromJSON(json as never, t.tokenizerConfig);
}

test("train --packing over a cached prepared set packs (packing is applied when reading, not cached)", () => {
  const model = tinyModel("llama", 5, { num_key_value_heads: 2 });
  const data = wordData(24);
  const env = { LORA_TS_CACHE: join(root, "packing-cache") };
  const steps = (extra: string[]) => {
    const out = join(root, `packing-run-${extra.length}`);
    const r = runCli(
      ["train", "--model", model, "--data", data, "--out", out, "--epochs", "1", "--batch-size", "2"].concat(
        ["--max-length", "64", "--no-progress", "--no-report"],
        extra,
      ),
      env,
    );
    assert.equal(r.code, 0, r.stderr);
    return { stdout: r.stdout, steps: readMetrics(join(out, "metrics.jsonl")).length };
  };
  const plain = steps([]);
  assert.match(plain.stdout, /^preparing data /m, "the first run prepares");
  assert.equal(plain.steps, 12, "24 examples in batches of 2");
  const packed = steps(["--packing"]);
  assert.match(packed.stdout, /from the data cache/, "the second run reads the same prepared set");
  // Rows of 10-14 tokens packed into 64: four or more to a row, so far fewer steps.
  assert.ok(packed.steps > 0 && packed.steps <= 4, `packed: ${packed.steps} steps`);
});
