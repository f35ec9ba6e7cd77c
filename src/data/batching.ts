/**
 * Shuffling, validation split, packing, padding and a resumable batch iterator.
 *
 *  - Shuffling is Fisher-Yates driven by the project's seeded Rng (util/rng.ts); any source of uniform
 *    unsigned 32-bit integers with `next()` works.
 *  - splitTrainVal: a seeded random `valFraction` of the items (at least 1 when the fraction is > 0,
 *    never all of them) is the validation set; both parts keep the original order.
 *  - packExamples: examples are laid end to end, in order, into rows of at most maxLength tokens; an
 *    example that does not fit in the current row starts the next one (examples are never split;
 *    rows are padded later). Attention CROSSES example boundaries inside a row and positions are not
 *    reset, like Hugging Face's packing without position-id reset: the cheapest honest choice (a
 *    causal mask only). Each example's first label is IGNORE_INDEX so no loss is taken on predicting
 *    one example from the end of the previous one.
 *  - padBatch: right padding with the pad id (tokenizer_config's pad_token, else EOS, else 0), label
 *    IGNORE_INDEX and attention mask 0 on padding, 1 on real tokens.
 *  - Examples come as an array or as an ExampleSource (example-source.ts: a prepared data set on disk),
 *    with the same batches, orders and positions either way; the split and packing work on indices
 *    (splitIndices, packedSource), so a large prepared set is never copied into JS objects.
 *  - DataLoader: fixed-size batches over a per-epoch permutation derived from (seed, epoch), so its
 *    whole position is `{epoch, index, seed, size}` and a restored loader yields exactly the same later
 *    batches. The last partial batch of an epoch is kept unless dropLast.
 */
import { LoraTsError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import { IGNORE_INDEX } from "./chat-template.js";
import { asSource, type ExampleSource, packedSource, subsetSource } from "./example-source.js";
import type { Example } from "./examples.js";
import type { Tokenizer } from "./tokenizer.js";

/** A source of uniformly distributed unsigned 32-bit integers (util/rng.ts's Rng). */
export interface RandomSource {
  next(): number;
}

const TWO_POW_32 = 4294967296;

/** A uniform integer in [0, n) without modulo bias (n ≤ 2^32). */
export function randomBelow(rng: RandomSource, n: number): number {
  if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) throw new LoraTsError(`randomBelow: bad n ${n}`);
  const limit = TWO_POW_32 - (TWO_POW_32 % n);
  for (;;) {
    const x = rng.next() >>> 0;
    if (x < limit) return x % n;
  }
}

/** Fisher-Yates shuffle of `items` in place; returns `items`. */
export function shuffleInPlace<T>(items: T[], rng: RandomSource): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomBelow(rng, i + 1);
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items;
}

/** A random permutation of 0..n-1. */
export function permutation(n: number, rng: RandomSource): number[] {
  return shuffleInPlace(
    Array.from({ length: n }, (_, i) => i),
    rng,
  );
}

/** Which of `n` items are the validation set (see the module comment); both lists ascending. */
export function splitIndices(
  n: number,
  valFraction: number,
  seed: number,
): { train: Int32Array; val: Int32Array } {
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new LoraTsError(`valFraction must be in [0, 1), got ${valFraction}`);
  }
  let nVal = Math.round(n * valFraction);
  if (valFraction > 0) nVal = Math.max(1, nVal);
  if (nVal >= n && nVal > 0) {
    throw new LoraTsError(`valFraction ${valFraction} of ${n} item(s) leaves nothing to train on`);
  }
  const isVal = new Uint8Array(n);
  for (const i of permutation(n, Rng.derive(seed, "val-split")).slice(0, nVal)) isVal[i] = 1;
  const train = new Int32Array(n - nVal);
  const val = new Int32Array(nVal);
  let t = 0;
  let v = 0;
  for (let i = 0; i < n; i++) {
    if (isVal[i]) val[v++] = i;
    else train[t++] = i;
  }
  return { train, val };
}

/** Splits off a seeded random validation set (see the module comment). */
export function splitTrainVal<T>(
  items: readonly T[],
  valFraction: number,
  seed: number,
): { train: T[]; val: T[] } {
  const { train, val } = splitIndices(items.length, valFraction, seed);
  return { train: Array.from(train, (i) => items[i]!), val: Array.from(val, (i) => items[i]!) };
}

/** splitTrainVal over a source, by indices: the same split, nothing copied. */
export function splitSource(
  src: ExampleSource,
  valFraction: number,
  seed: number,
): { train: ExampleSource; val: ExampleSource } {
  const { train, val } = splitIndices(src.size, valFraction, seed);
  return { train: subsetSource(src, train), val: subsetSource(src, val) };
}

/** Packs examples into rows of at most maxLength tokens (see the module comment and packedSource). */
export function packExamples(examples: readonly Example[], maxLength: number): Example[] {
  const packed = packedSource(asSource(examples), maxLength);
  return Array.from({ length: packed.size }, (_, r) => packed.get(r));
}

export interface Batch {
  /** Token ids, row-major [batch, seq]. */
  ids: BigInt64Array;
  /** Labels (unshifted; IGNORE_INDEX where not trained and on padding), [batch, seq]. */
  labels: BigInt64Array;
  /** 1 for real tokens, 0 for padding, [batch, seq]. */
  attentionMask: BigInt64Array;
  batch: number;
  seq: number;
}

/** The pad id: tokenizer_config's pad_token, else EOS, else 0. */
export function padIdOf(tok: Tokenizer): number {
  const p = tok.tokenizerConfig["pad_token"];
  const s =
    typeof p === "string" ? p : p && typeof p === "object" ? (p as { content?: unknown }).content : undefined;
  const id = typeof s === "string" ? tok.tokenToId(s) : undefined;
  return id ?? tok.eosId ?? 0;
}

export interface PadOptions {
  /** Pad every row to exactly this length (default: the longest row, rounded up by padToMultipleOf). */
  seq?: number;
  padToMultipleOf?: number;
}

/** Right-pads examples into one batch. */
export function padBatch(examples: readonly Example[], padId: number, options: PadOptions = {}): Batch {
  if (examples.length === 0) throw new LoraTsError("padBatch: no examples");
  let seq = options.seq ?? Math.max(...examples.map((e) => e.inputIds.length));
  if (options.seq === undefined && options.padToMultipleOf) {
    const m = options.padToMultipleOf;
    seq = Math.ceil(seq / m) * m;
  }
  const b = examples.length;
  const ids = new BigInt64Array(b * seq).fill(BigInt(padId));
  const labels = new BigInt64Array(b * seq).fill(BigInt(IGNORE_INDEX));
  const attentionMask = new BigInt64Array(b * seq);
  examples.forEach((ex, r) => {
    if (ex.inputIds.length > seq) {
      throw new LoraTsError(`padBatch: an example has ${ex.inputIds.length} tokens > seq ${seq}`);
    }
    if (ex.labels.length !== ex.inputIds.length)
      throw new LoraTsError("padBatch: labels/inputIds lengths differ");
    for (let t = 0; t < ex.inputIds.length; t++) {
      ids[r * seq + t] = BigInt(ex.inputIds[t]!);
      labels[r * seq + t] = BigInt(ex.labels[t]!);
      attentionMask[r * seq + t] = 1n;
    }
  });
  return { ids, labels, attentionMask, batch: b, seq };
}

/** A DataLoader's position, for checkpoints. */
export interface LoaderState {
  /** Epoch of the next batch (0-based). */
  epoch: number;
  /** Index of the next batch within that epoch. */
  index: number;
  /** Seed of the per-epoch orders. */
  seed: number;
  /** Number of examples (checked on restore). */
  size: number;
}

export interface DataLoaderOptions extends PadOptions {
  batchSize: number;
  padId: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  seed?: number;
  /** Drop the last partial batch of each epoch (default false). */
  dropLast?: boolean;
}

export interface LoaderBatch extends Batch {
  /** Epoch and index within the epoch of this batch. */
  epoch: number;
  index: number;
}

/** Endless, resumable batches over the examples, epoch after epoch. */
export class DataLoader {
  private epoch = 0;
  private index = 0;
  private order: number[] | undefined;
  private readonly seed: number;
  private readonly examples: ExampleSource;
  /** Batches in one epoch. */
  readonly batchesPerEpoch: number;

  constructor(
    examples: readonly Example[] | ExampleSource,
    private readonly options: DataLoaderOptions,
  ) {
    this.examples = asSource(examples);
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new LoraTsError(`batchSize must be ≥ 1, got ${batchSize}`);
    this.seed = options.seed ?? 0;
    const n = this.examples.size;
    this.batchesPerEpoch = options.dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new LoraTsError(
        `${n} example(s) make no batch of ${batchSize}${options.dropLast ? " (dropLast)" : ""}`,
      );
    }
  }

  /** The order of the examples in `epoch`. */
  epochOrder(epoch: number): number[] {
    const n = this.examples.size;
    if (this.options.shuffle === false) return Array.from({ length: n }, (_, i) => i);
    return permutation(n, Rng.derive(this.seed, `epoch ${epoch}`));
  }

  /** The next batch (moving to the next epoch after the last batch of one). */
  next(): LoaderBatch {
    if (this.index >= this.batchesPerEpoch) {
      this.epoch++;
      this.index = 0;
      this.order = undefined;
    }
    this.order ??= this.epochOrder(this.epoch);
    const bs = this.options.batchSize;
    const picked = this.order.slice(this.index * bs, (this.index + 1) * bs).map((i) => this.examples.get(i));
    const batch = padBatch(picked, this.options.padId, this.options);
    const out: LoaderBatch = { ...batch, epoch: this.epoch, index: this.index };
    this.index++;
    return out;
  }

  /** Epoch and batch index of the next batch (an epoch whose batches are all used counts as done). */
  get position(): { epoch: number; index: number } {
    return this.index >= this.batchesPerEpoch
      ? { epoch: this.epoch + 1, index: 0 }
      : { epoch: this.epoch, index: this.index };
  }

  state(): LoaderState {
    return { ...this.position, seed: this.seed, size: this.examples.size };
  }

  /** Continues from a saved state; the data, batch size and seed must be the same as when it was saved. */
  restore(s: LoaderState): void {
    if (s.size !== this.examples.size) {
      throw new LoraTsError(
        `cannot resume the data loader: it had ${s.size} examples, now ${this.examples.size}`,
      );
    }
    if (s.seed !== this.seed)
      throw new LoraTsError(`cannot resume the data loader: seed ${s.seed} ≠ ${this.seed}`);
    if (!(Number.isInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.index) && s.index >= 0)) {
      throw new LoraTsError(`bad data loader state ${JSON.stringify(s)}`);
    }
    if (s.index > this.batchesPerEpoch) {
      throw new LoraTsError(`data loader state index ${s.index} > ${this.batchesPerEpoch} batches per epoch`);
    }
    this.epoch = s.epoch;
    this.index = s.index;
    this.order = undefined;
  }
}
