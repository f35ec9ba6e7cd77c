/**
 * A small seeded PRNG: xoshiro128** (Blackman & Vigna), 128 bits of state, period 2^128 - 1, seeded
 * through splitmix32 so that nearby seeds give unrelated streams. Everything random in the project
 * (adapter init, dropout masks, data shuffling) draws from one of these so runs reproduce, and the
 * state can be saved in a checkpoint and restored to resume the exact stream.
 *
 * normal() uses Box-Muller and consumes exactly two 32-bit draws per call (the second variate is
 * not cached), so the state is just the four words.
 */
import { LoraTsError } from "./errors.js";

const TWO_POW_32 = 4294967296;

/** FNV-1a over the UTF-16 code units of `s`, a 32-bit hash for turning labels into seeds. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** A generator seeded from a number (any integer; only its low 53 bits matter) or a string. */
  constructor(seed: number | string = 0) {
    let x: number;
    if (typeof seed === "string") x = hashString(seed);
    else {
      if (!Number.isFinite(seed)) throw new LoraTsError(`rng seed must be a finite number, got ${seed}`);
      const hi = Math.floor(Math.abs(seed) / TWO_POW_32) >>> 0;
      x = ((seed >>> 0) ^ Math.imul(hi, 0x9e3779b1)) >>> 0;
    }
    // splitmix32 fills the state; it never yields four zero words in a row.
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** An independent stream for `label` under `seed` (e.g. one per module path), order-independent. */
  static derive(seed: number, label: string): Rng {
    return new Rng(`${seed}\u0000${label}`);
  }

  /** The next uniformly distributed unsigned 32-bit integer. */
  next(): number {
    const s1 = this.s1;
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /**
   * Fills `out` with keep flags: out[i] = 0 when a 16-bit uniform draw is below `below16` (i.e. with
   * probability below16 / 65536), else 1. Two flags per 32-bit draw; the generator is inlined on
   * local variables because a dropout step draws tens of millions of flags.
   */
  fillKeepFlags(out: Uint8Array, below16: number): Uint8Array {
    let s0 = this.s0;
    let s1 = this.s1;
    let s2 = this.s2;
    let s3 = this.s3;
    const n = out.length;
    for (let i = 0; i < n; i += 2) {
      const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = rotl(s3, 11);
      // Branch-free: (x − below16) is negative exactly when x is dropped.
      out[i] = 1 - (((r & 0xffff) - below16) >>> 31);
      out[i + 1] = 1 - (((r >>> 16) - below16) >>> 31); // past the end: a no-op on a typed array
    }
    this.s0 = s0;
    this.s1 = s1;
    this.s2 = s2;
    this.s3 = s3;
    return out;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next() / TWO_POW_32;
  }

  /** A float uniformly distributed in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.float();
  }

  /** A standard normal variate (Box-Muller; two draws per call). */
  normal(mean = 0, std = 1): number {
    const u1 = (this.next() + 0.5) / TWO_POW_32; // in (0, 1): log is finite
    const u2 = this.next() / TWO_POW_32;
    return mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Fills `out` with U[lo, hi). */
  fillUniform(out: Float32Array | Float64Array, lo: number, hi: number): typeof out {
    for (let i = 0; i < out.length; i++) out[i] = this.uniform(lo, hi);
    return out;
  }

  /** Fills `out` with N(mean, std²). */
  fillNormal(out: Float32Array | Float64Array, mean = 0, std = 1): typeof out {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** The four state words, for a checkpoint. */
  get state(): [number, number, number, number] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** Restores a state from `state`; must be four uint32 values, not all zero. */
  set state(s: readonly number[]) {
    if (
      !Array.isArray(s) ||
      s.length !== 4 ||
      !s.every((v) => Number.isInteger(v) && v >= 0 && v < TWO_POW_32) ||
      s.every((v) => v === 0)
    ) {
      throw new LoraTsError(
        `rng state must be four unsigned 32-bit integers, not all zero; got ${JSON.stringify(s)}`,
      );
    }
    [this.s0, this.s1, this.s2, this.s3] = s.map((v) => v | 0) as [number, number, number, number];
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
