/**
 * Writes the default model's data and tokenizer:
 *
 *   node dist/recipes/default-model/write-data.js [dataDir] [--model-dir DIR] [--corpus-mb 3]
 *        [--val-kb 150] [--vocab 2048] [--seed 1]
 *
 * dataDir (default models/default/data) receives
 *   corpus.txt               stories 0.. of generateCorpus(seed), about --corpus-mb megabytes, each
 *                            followed by "<|endoftext|>" (the special token: the model learns where a
 *                            story ends, and generation prompted with BOS starts a new story)
 *   corpus-val.txt           further stories (never in corpus.txt), about --val-kb kilobytes, same form
 *   persona.jsonl            the Pip fine-tuning rows {"prompt","completion"} (train)
 *   persona-heldout.jsonl    held-out Pip rows, for before/after generations and validation
 * and the model dir (default: the parent of dataDir) receives
 *   tokenizer.json           byte-level BPE trained on corpus.txt's stories (trainBpe), vocab --vocab,
 *                            id 0 = "<|endoftext|>"
 *   tokenizer_config.json    bos = eos = pad = "<|endoftext|>", add_bos_token true
 * Everything is deterministic in --seed; files are written atomically.
 */
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { trainBpe } from "../../src/data/bpe-train.js";
import { Tokenizer } from "../../src/data/tokenizer.js";
import { gpt2TokenizerJson, type JsonObject, tokenizerConfigJson } from "../../src/io/tokenizer-json.js";
import { writeFileAtomic, writeJsonAtomic } from "../../src/util/atomic.js";
import { generateStory } from "./corpus.js";
import { generateFinetuneRows, type PromptCompletion } from "./finetune-data.js";

export const EOT = "<|endoftext|>";

export interface WriteDataOptions {
  dataDir: string;
  /** Where tokenizer.json / tokenizer_config.json go (default: dirname(dataDir)). */
  modelDir?: string;
  /** Size of corpus.txt in megabytes (10^6 bytes; default 3). */
  corpusMb?: number;
  /** Size of corpus-val.txt in kilobytes (default 150). */
  valKb?: number;
  /** Tokenizer vocabulary size (default 2048). */
  vocabSize?: number;
  seed?: number;
  /** Progress lines (default console.log). */
  log?: (line: string) => void;
}

export interface WriteDataSummary {
  stories: number;
  corpusBytes: number;
  corpusTokens: number;
  valStories: number;
  valBytes: number;
  charsPerToken: number;
  trainRows: number;
  heldOutRows: number;
  tokenizerSeconds: number;
}

/** Stories from index `start` until their UTF-8 size reaches `bytes`. */
function storiesUpTo(seed: number, start: number, bytes: number): string[] {
  const out: string[] = [];
  let total = 0;
  for (let i = start; total < bytes; i++) {
    const s = generateStory(seed, i);
    out.push(s);
    total += Buffer.byteLength(s) + EOT.length;
  }
  return out;
}

function jsonl(rows: PromptCompletion[]): string {
  return rows.map((r) => `${JSON.stringify({ prompt: r.prompt, completion: r.completion })}\n`).join("");
}

export function writeDefaultData(o: WriteDataOptions): WriteDataSummary {
  const seed = o.seed ?? 1;
  const vocabSize = o.vocabSize ?? 2048;
  const log = o.log ?? console.log;
  const dataDir = resolve(o.dataDir);
  const modelDir = resolve(o.modelDir ?? dirname(dataDir));
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(modelDir, { recursive: true });

  const stories = storiesUpTo(seed, 0, (o.corpusMb ?? 3) * 1e6);
  const val = storiesUpTo(seed, stories.length, (o.valKb ?? 150) * 1e3);
  const corpusText = stories.map((s) => s + EOT).join("");
  const valText = val.map((s) => s + EOT).join("");
  writeFileAtomic(join(dataDir, "corpus.txt"), corpusText);
  writeFileAtomic(join(dataDir, "corpus-val.txt"), valText);
  const corpusBytes = Buffer.byteLength(corpusText);
  const valBytes = Buffer.byteLength(valText);
  log(`corpus.txt: ${stories.length} stories, ${(corpusBytes / 1e6).toFixed(2)} MB`);
  log(`corpus-val.txt: ${val.length} stories, ${(valBytes / 1e3).toFixed(0)} kB`);

  const t0 = performance.now();
  const vocab = trainBpe(stories, { vocabSize, specialTokens: [EOT] });
  const tokenizerSeconds = (performance.now() - t0) / 1000;
  const tokenizerJson: JsonObject = gpt2TokenizerJson(vocab);
  const config = tokenizerConfigJson({
    bosToken: EOT,
    eosToken: EOT,
    padToken: EOT,
    addBosToken: true,
    tokenizerClass: "GPT2Tokenizer",
  });
  writeJsonAtomic(join(modelDir, "tokenizer.json"), tokenizerJson);
  writeJsonAtomic(join(modelDir, "tokenizer_config.json"), config);
  log(
    `tokenizer.json: vocab ${vocab.tokens.length} (${vocab.merges.length} merges), trained in ` +
      `${tokenizerSeconds.toFixed(1)} s`,
  );

  // Compression, and a check that the tokenizer reproduces the text exactly.
  const tok = Tokenizer.fromJSON(tokenizerJson, config);
  let corpusTokens = 0;
  let chars = 0;
  for (let i = 0; i < stories.length; i++) {
    const ids = tok.encode(stories[i]!, { addBos: false });
    corpusTokens += ids.length + 1; // + the separator
    chars += stories[i]!.length + 1;
    if (i < 50 && tok.decode(ids) !== stories[i]) throw new Error(`tokenizer does not round-trip story ${i}`);
  }
  const charsPerToken = chars / corpusTokens;
  log(`corpus tokens: ${corpusTokens} (${charsPerToken.toFixed(2)} chars/token)`);

  const { train, heldOut } = generateFinetuneRows(seed);
  writeFileAtomic(join(dataDir, "persona.jsonl"), jsonl(train));
  writeFileAtomic(join(dataDir, "persona-heldout.jsonl"), jsonl(heldOut));
  const rowTokens = train.map((r) => tok.encode(r.prompt + r.completion, { addBos: true }).length + 1);
  const maxRow = Math.max(...rowTokens);
  const meanRow = rowTokens.reduce((a, b) => a + b, 0) / rowTokens.length;
  log(
    `persona.jsonl: ${train.length} rows; persona-heldout.jsonl: ${heldOut.length} rows ` +
      `(tokens per row with BOS and EOS: mean ${meanRow.toFixed(1)}, max ${maxRow})`,
  );
  return {
    stories: stories.length,
    corpusBytes,
    corpusTokens,
    valStories: val.length,
    valBytes,
    charsPerToken,
    trainRows: train.length,
    heldOutRows: heldOut.length,
    tokenizerSeconds,
  };
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      "model-dir": { type: "string" },
      "corpus-mb": { type: "string" },
      "val-kb": { type: "string" },
      vocab: { type: "string" },
      seed: { type: "string" },
    },
  });
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${v}`);
    return n;
  };
  const opts: WriteDataOptions = { dataDir: positionals[0] ?? "models/default/data" };
  if (values["model-dir"] !== undefined) opts.modelDir = values["model-dir"];
  const corpusMb = num("corpus-mb", values["corpus-mb"]);
  if (corpusMb !== undefined) opts.corpusMb = corpusMb;
  const valKb = num("val-kb", values["val-kb"]);
  if (valKb !== undefined) opts.valKb = valKb;
  const vocab = num("vocab", values.vocab);
  if (vocab !== undefined) opts.vocabSize = vocab;
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  if (seed !== undefined) opts.seed = seed;
  const t0 = performance.now();
  writeDefaultData(opts);
  console.log(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main();
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
