import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { DataLoader, packExamples, splitSource, splitTrainVal } from "../../src/data/batching.js";
import { readDataset } from "../../src/data/dataset-file.js";
import { arraySource, longestExample, packedSource, packRuns } from "../../src/data/example-source.js";
import { buildExamples, type Example } from "../../src/data/examples.js";
import { prepareData } from "../../src/data/prepare.js";
import { PreparedData } from "../../src/data/prepared.js";
import { Rng } from "../../src/util/rng.js";
import { toyTokenizer, WORDS } from "./toy-tokenizer.js";

const root = mkdtempSync(join(tmpdir(), "lora-ts-prepared-loader-"));
after(() => rmSync(root, { recursive: true, force: true }));
const tok = toyTokenizer();
const MAX = 20;

async function fixture(): Promise<{ examples: Example[]; data: PreparedData }> {
  const rng = new Rng(9);
  const w = (n: number) => Array.from({ length: n }, () => WORDS[rng.next() % WORDS.length]).join(" ");
  const lines = Array.from({ length: 300 }, () =>
    JSON.stringify({ prompt: w(1 + (rng.next() % 8)), completion: w(1 + (rng.next() % 10)) }),
  );
  const path = join(root, "pc.jsonl");
  writeFileSync(path, lines.join("\n"));
  const dir = join(root, "prepared");
  await prepareData(dir, {
    files: [path],
    tokenizer: tok,
    options: { maxLength: MAX },
    workers: 2,
    chunkBytes: 2000,
  });
  return {
    examples: buildExamples(readDataset(path), tok, { maxLength: MAX }).examples,
    data: PreparedData.open(dir),
  };
}

/** Batches as plain arrays, for comparing. */
function batches(loader: DataLoader, n: number) {
  return Array.from({ length: n }, () => {
    const b = loader.next();
    return { ...b, ids: [...b.ids], labels: [...b.labels], attentionMask: [...b.attentionMask] };
  });
}

test("a prepared data set gives the array loader's batches: shuffled epochs, the split, packing and resume", async () => {
  const { examples, data } = await fixture();
  try {
    for (const packing of [false, true]) {
      const arr = packing ? packExamples(examples, MAX) : examples;
      const src = packing ? packedSource(data, MAX) : data;
      assert.equal(src.size, arr.length);
      assert.deepEqual(
        Array.from({ length: src.size }, (_, i) => src.get(i)),
        arr,
      );
      assert.equal(longestExample(src), Math.max(...arr.map((e) => e.inputIds.length)));
      const a = splitTrainVal(arr, 0.1, 3);
      const s = splitSource(src, 0.1, 3);
      assert.deepEqual(
        Array.from({ length: s.val.size }, (_, i) => s.val.get(i)),
        a.val,
      );
      const opts = { batchSize: 4, padId: 0, seed: 5 };
      const la = new DataLoader(a.train, opts);
      const ls = new DataLoader(s.train, opts);
      assert.equal(ls.batchesPerEpoch, la.batchesPerEpoch);
      const n = la.batchesPerEpoch + 7; // into the second epoch
      assert.deepEqual(batches(ls, n), batches(la, n));
      // Resume mid-epoch: a fresh loader restored from the state continues as the array one does.
      const state = ls.state();
      assert.deepEqual(state, la.state());
      const resumed = new DataLoader(s.train, opts);
      resumed.restore(state);
      assert.deepEqual(batches(resumed, 10), batches(la, 10));
    }
  } finally {
    data.close();
  }
});

test("packRuns: runs of consecutive examples; empty examples never start a row; too long is an error", () => {
  const lens = [3, 0, 4, 5, 0, 2, 8];
  assert.deepEqual([...packRuns(lens.length, (i) => lens[i]!, 8)], [0, 3, 6, 7]);
  assert.deepEqual([...packRuns(2, () => 0, 8)], []);
  assert.throws(() => packRuns(1, () => 9, 8), /9 tokens > maxLength 8/);
  const src = arraySource([
    { inputIds: [1, 2], labels: [1, 2] },
    { inputIds: [], labels: [] },
    { inputIds: [3, 4], labels: [-100, 4] },
  ]);
  assert.deepEqual(packedSource(src, 8).get(0), { inputIds: [1, 2, 3, 4], labels: [-100, 2, -100, 4] });
});
