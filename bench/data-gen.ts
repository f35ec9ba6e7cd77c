/**
 * Alpaca-format JSONL files for the data benchmark (bench/data.ts), generated from a seed so every run
 * and every machine prepares the same rows. Rows imitate Stanford Alpaca's shape: an instruction of
 * 6-30 words, an input on about 40% of rows, an output of 10-180 words; about 530 bytes a row, so
 * 52,000 rows come to the ~28 MB of the real alpaca_data.json and 1M rows to ~530 MB.
 */
import { closeSync, existsSync, openSync, renameSync, statSync, writeSync } from "node:fs";
import { Rng } from "../src/util/rng.js";

// Everyday words, so byte-level BPE tokenizers see text like their training data.
const WORDS = (
  "the a an and or but if then so because when while after before of in on at to from with without " +
  "for about into over under between through during is are was were be been being have has had do does " +
  "did can could will would should may might must write explain describe list give find make name tell " +
  "show compare summarize translate classify rewrite suggest create generate answer question story poem " +
  "letter email sentence paragraph word number list table code function program data model example " +
  "reason idea plan step way time day year people world life child family friend school work home city " +
  "water food tree river mountain sun moon star light dark small big little long short good bad new old " +
  "happy sad quick slow bright quiet loud warm cold green blue red yellow white black first last next " +
  "other every each some many few more most less least very really also only just still even again " +
  "here there where why how what which who whom whose this that these those it its they them their we " +
  "our you your he him his she her i me my one two three four five ten hundred thousand"
).split(" ");

function words(rng: Rng, lo: number, hi: number): string {
  const n = lo + (rng.next() % (hi - lo + 1));
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let w = WORDS[rng.next() % WORDS.length]!;
    if (i === 0) w = w[0]!.toUpperCase() + w.slice(1);
    out.push(w);
    if (i > 0 && i < n - 1 && rng.next() % 11 === 0) out.push(",");
  }
  return `${out.join(" ").replaceAll(" ,", ",")}.`;
}

/** One Alpaca row as a JSON line. */
function row(rng: Rng): string {
  const instruction = words(rng, 6, 30);
  const input = rng.next() % 10 < 4 ? words(rng, 5, 40) : "";
  const parts: string[] = [];
  const sentences = 1 + (rng.next() % 8);
  for (let i = 0; i < sentences; i++) parts.push(words(rng, 6, 22));
  return JSON.stringify({ instruction, input, output: parts.join(" ") });
}

/**
 * Writes `rows` rows to `path` (under a temporary name, renamed at the end) unless a file from an
 * earlier run is already there; returns its size in bytes.
 */
export function generateAlpaca(path: string, rows: number, seed = 52): number {
  if (existsSync(path)) return statSync(path).size;
  const rng = new Rng(seed);
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w");
  let chunk: string[] = [];
  let pending = 0;
  for (let i = 0; i < rows; i++) {
    const line = row(rng);
    chunk.push(line);
    pending += line.length;
    if (pending > 1 << 23 || i === rows - 1) {
      writeSync(fd, `${chunk.join("\n")}\n`);
      chunk = [];
      pending = 0;
    }
  }
  closeSync(fd);
  renameSync(tmp, path);
  return statSync(path).size;
}
