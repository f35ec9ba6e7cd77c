/**
 * Examples by index, wherever they are held: an in-memory `Example[]` (the browser, `lora-ts eval`) or
 * a prepared data set on disk (prepared.ts), so that the loader, the validation split and packing work
 * on both without copying a million examples into JS objects. Lengths are asked for separately
 * because packing and the longest-example bound need only them, and a prepared set knows them from its
 * offsets without reading a token.
 */
import { LoraTsError } from "../util/errors.js";
import { IGNORE_INDEX } from "./chat-template.js";
import type { Example } from "./examples.js";

export interface ExampleSource {
  /** Number of examples. */
  readonly size: number;
  /** Tokens in example i. */
  length(i: number): number;
  /** Example i (a fresh object the caller may keep). */
  get(i: number): Example;
}

/** An array as a source (its examples are handed out as they are). */
export function arraySource(examples: readonly Example[]): ExampleSource {
  return {
    size: examples.length,
    length: (i) => examples[i]!.inputIds.length,
    get: (i) => examples[i]!,
  };
}

/** `src` itself, or an array as a source. */
export function asSource(src: ExampleSource | readonly Example[]): ExampleSource {
  return Array.isArray(src) ? arraySource(src as readonly Example[]) : (src as ExampleSource);
}

/** The examples of `src` at `indices`, in that order. */
export function subsetSource(src: ExampleSource, indices: Int32Array): ExampleSource {
  return {
    size: indices.length,
    length: (i) => src.length(indices[i]!),
    get: (i) => src.get(indices[i]!),
  };
}

/** The longest example of a source, in tokens (0 when empty). */
export function longestExample(src: ExampleSource): number {
  let n = 0;
  for (let i = 0; i < src.size; i++) n = Math.max(n, src.length(i));
  return n;
}

/**
 * Packing as runs of consecutive examples (batching.ts's module comment has the rules): examples are
 * laid end to end into rows of at most maxLength tokens, and one that does not fit starts the next
 * row. Returns `starts`, of length rows + 1: row r holds examples starts[r] .. starts[r + 1] - 1.
 * Empty examples add nothing and never start a row (they ride along in the row around them).
 */
export function packRuns(n: number, length: (i: number) => number, maxLength: number): Int32Array {
  const starts: number[] = [];
  let cur = -1; // tokens in the current row; -1 before the first
  for (let i = 0; i < n; i++) {
    const len = length(i);
    if (len > maxLength) {
      throw new LoraTsError(`packExamples: an example has ${len} tokens > maxLength ${maxLength}`);
    }
    if (len === 0) continue;
    if (cur < 0 || cur + len > maxLength) {
      // Leading empty examples belong to the first row.
      starts.push(starts.length === 0 ? 0 : i);
      cur = 0;
    }
    cur += len;
  }
  if (starts.length > 0) starts.push(n);
  return Int32Array.from(starts);
}

/** `src` packed into rows (see packRuns): each row joins its examples, each one's first label ignored. */
export function packedSource(src: ExampleSource, maxLength: number): ExampleSource {
  const starts = packRuns(src.size, (i) => src.length(i), maxLength);
  const rows = Math.max(0, starts.length - 1);
  const lengths = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let n = 0;
    for (let i = starts[r]!; i < starts[r + 1]!; i++) n += src.length(i);
    lengths[r] = n;
  }
  return {
    size: rows,
    length: (r) => lengths[r]!,
    get(r) {
      const inputIds: number[] = [];
      const labels: number[] = [];
      for (let i = starts[r]!; i < starts[r + 1]!; i++) {
        if (src.length(i) === 0) continue;
        const ex = src.get(i);
        for (const id of ex.inputIds) inputIds.push(id);
        labels.push(IGNORE_INDEX);
        for (let t = 1; t < ex.labels.length; t++) labels.push(ex.labels[t]!);
      }
      return { inputIds, labels };
    },
  };
}
