import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DataLoader,
  type LoaderState,
  packExamples,
  padBatch,
  padIdOf,
  permutation,
  randomBelow,
  shuffleInPlace,
  splitTrainVal,
} from "../../src/data/batching.js";
import type { Example } from "../../src/data/examples.js";
import { Rng } from "../../src/util/rng.js";
import { toyTokenizer } from "./toy-tokenizer.js";

const _ = -100;
const big = (xs: number[]) => BigInt64Array.from(xs.map(BigInt));

test("Fisher-Yates shuffling is reproducible with the seed and is a permutation", () => {
  const a = shuffleInPlace(
    Array.from({ length: 50 }, (_v, i) => i),
    new Rng(7),
  );
  const b = shuffleInPlace(
    Array.from({ length: 50 }, (_v, i) => i),
    new Rng(7),
  );
  const c = permutation(50, new Rng(8));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.deepEqual(
    [...a].sort((x, y) => x - y),
    Array.from({ length: 50 }, (_v, i) => i),
  );
  assert.notDeepEqual(
    a,
    Array.from({ length: 50 }, (_v, i) => i),
  );
  // every position is reachable: over many shuffles of 4 items, item 0 lands everywhere
  const seen = new Set<number>();
  const rng = new Rng(1);
  for (let k = 0; k < 100; k++) seen.add(shuffleInPlace([0, 1, 2, 3], rng).indexOf(0));
  assert.equal(seen.size, 4);
  // a source that always returns 2^32-1 forces a rejection for n = 3, then accepts 0
  const seq = [0xffffffff, 0];
  assert.equal(randomBelow({ next: () => seq.shift()! }, 3), 0);
});

test("validation split: seeded, disjoint, order kept, at least one item", () => {
  const items = Array.from({ length: 20 }, (_v, i) => `row${i}`);
  const s1 = splitTrainVal(items, 0.2, 42);
  const s2 = splitTrainVal(items, 0.2, 42);
  const s3 = splitTrainVal(items, 0.2, 43);
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(s1.val, s3.val);
  assert.equal(s1.val.length, 4);
  assert.equal(s1.train.length, 16);
  assert.deepEqual([...s1.train, ...s1.val].sort(), [...items].sort());
  const idx = (x: string) => Number(x.slice(3));
  for (const part of [s1.train, s1.val]) {
    assert.deepEqual(
      part.map(idx),
      [...part.map(idx)].sort((a, b) => a - b),
    );
  }
  assert.equal(splitTrainVal(items, 0.01, 1).val.length, 1);
  assert.deepEqual(splitTrainVal(items, 0, 1), { train: items, val: [] });
  assert.throws(() => splitTrainVal(["a"], 0.5, 1), /leaves nothing to train on/);
  assert.throws(() => splitTrainVal(items, 1, 1), /valFraction must be in \[0, 1\)/);
});

test("packing: examples laid end to end, never split, first label of each example ignored", () => {
  const ex = (ids: number[], labels: number[]): Example => ({ inputIds: ids, labels });
  const rows = packExamples(
    [
      ex([1, 10, 11, 2], [_, _, 11, 2]),
      ex([1, 20, 2], [_, 20, 2]),
      ex([30, 31, 32], [30, 31, 32]), // no BOS: its first label is dropped when packed
      ex([1, 40], [_, 40]),
    ],
    8,
  );
  assert.deepEqual(rows, [
    { inputIds: [1, 10, 11, 2, 1, 20, 2], labels: [_, _, 11, 2, _, 20, 2] },
    { inputIds: [30, 31, 32, 1, 40], labels: [_, 31, 32, _, 40] },
  ]);
  assert.throws(() => packExamples([ex([1, 2, 3], [1, 2, 3])], 2), /3 tokens > maxLength 2/);
});

test("padding: right padding with the pad id, label -100 and attention mask 0 on padding", () => {
  const b = padBatch(
    [
      { inputIds: [1, 5, 6], labels: [_, 5, 6] },
      { inputIds: [1, 7], labels: [_, 7] },
      { inputIds: [1, 8, 9, 10], labels: [_, _, 9, 10] },
    ],
    2,
  );
  assert.equal(b.batch, 3);
  assert.equal(b.seq, 4);
  assert.deepEqual(b.ids, big([1, 5, 6, 2, 1, 7, 2, 2, 1, 8, 9, 10]));
  assert.deepEqual(b.labels, big([_, 5, 6, _, _, 7, _, _, _, _, 9, 10]));
  assert.deepEqual(b.attentionMask, big([1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1]));
  const fixed = padBatch([{ inputIds: [3], labels: [3] }], 0, { seq: 3 });
  assert.deepEqual(fixed.ids, big([3, 0, 0]));
  assert.deepEqual(fixed.attentionMask, big([1, 0, 0]));
  assert.equal(padBatch([{ inputIds: [3, 4, 5], labels: [3, 4, 5] }], 0, { padToMultipleOf: 4 }).seq, 4);
  // pad id: tokenizer_config's pad_token, else EOS
  assert.equal(padIdOf(toyTokenizer()), 2);
  assert.equal(padIdOf(toyTokenizer({ padToken: "<unk>" })), 0);
});

function makeExamples(n: number): Example[] {
  return Array.from({ length: n }, (_v, i) => ({
    inputIds: Array.from({ length: 1 + (i % 4) }, () => 100 + i),
    labels: Array.from({ length: 1 + (i % 4) }, () => 100 + i),
  }));
}

/** The example numbers (100 + i) in a batch, by first token of each row. */
function rowsOf(b: { ids: BigInt64Array; batch: number; seq: number }): number[] {
  return Array.from({ length: b.batch }, (_v, r) => Number(b.ids[r * b.seq]!) - 100);
}

test("DataLoader: each epoch is a seeded permutation; a restored loader yields exactly the same later batches", () => {
  const examples = makeExamples(10);
  const opts = { batchSize: 4, padId: 0, seed: 123 };
  const loader = new DataLoader(examples, opts);
  assert.equal(loader.batchesPerEpoch, 3);
  const run: { epoch: number; index: number; rows: number[]; ids: BigInt64Array }[] = [];
  for (let k = 0; k < 8; k++) {
    const b = loader.next();
    run.push({ epoch: b.epoch, index: b.index, rows: rowsOf(b), ids: b.ids });
  }
  assert.deepEqual(
    run.map((r) => [r.epoch, r.index, r.rows.length]),
    [
      [0, 0, 4],
      [0, 1, 4],
      [0, 2, 2],
      [1, 0, 4],
      [1, 1, 4],
      [1, 2, 2],
      [2, 0, 4],
      [2, 1, 4],
    ],
  );
  const epoch0 = run.slice(0, 3).flatMap((r) => r.rows);
  const epoch1 = run.slice(3, 6).flatMap((r) => r.rows);
  assert.deepEqual(
    [...epoch0].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.deepEqual(
    [...epoch1].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.notDeepEqual(epoch0, epoch1);
  assert.deepEqual(epoch0, new DataLoader(examples, opts).epochOrder(0));

  // Stop after k batches, save the state (through JSON, as a checkpoint would), resume in a new loader.
  for (const k of [1, 3, 5]) {
    const a = new DataLoader(examples, opts);
    for (let i = 0; i < k; i++) a.next();
    const saved = JSON.parse(JSON.stringify(a.state())) as LoaderState;
    const b = new DataLoader(examples, opts);
    b.restore(saved);
    for (let i = k; i < 8; i++) {
      const x = b.next();
      assert.deepEqual([x.epoch, x.index], [run[i]!.epoch, run[i]!.index], `k=${k} i=${i}`);
      assert.deepEqual(x.ids, run[i]!.ids, `k=${k} i=${i}`);
    }
  }
  const s = new DataLoader(examples, opts);
  for (let i = 0; i < 3; i++) s.next();
  assert.deepEqual(s.state(), { epoch: 1, index: 0, seed: 123, size: 10 });

  assert.throws(() => new DataLoader(makeExamples(9), opts).restore(s.state()), /had 10 examples, now 9/);
  assert.throws(() => new DataLoader(examples, { ...opts, seed: 1 }).restore(s.state()), /seed 123/);
  const other = new DataLoader(examples, { ...opts, seed: 124 });
  assert.notDeepEqual(other.epochOrder(0), loader.epochOrder(0));
  const noShuffle = new DataLoader(examples, { ...opts, shuffle: false, dropLast: true });
  assert.equal(noShuffle.batchesPerEpoch, 2);
  assert.deepEqual(rowsOf(noShuffle.next()), [0, 1, 2, 3]);
  assert.deepEqual(rowsOf(noShuffle.next()), [4, 5, 6, 7]);
  assert.deepEqual(rowsOf(noShuffle.next()), [0, 1, 2, 3]);
  // padding masks of a loader batch
  const b0 = new DataLoader(examples, { batchSize: 10, padId: 0, shuffle: false }).next();
  assert.equal(b0.seq, 4);
  for (let r = 0; r < 10; r++) {
    const len = 1 + (r % 4);
    for (let t = 0; t < 4; t++) assert.equal(b0.attentionMask[r * 4 + t], t < len ? 1n : 0n);
  }
});
