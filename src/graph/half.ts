/**
 * Conversions between float32 and the two 16-bit float formats that model checkpoints use.
 *
 * 16-bit values are always carried as their raw bit patterns in a Uint16Array (JavaScript has no
 * 16-bit float type on Node 20). Every conversion works on whole arrays: bit casts go through a
 * Uint32Array view laid over the same memory as a Float32Array, which is far faster than a
 * DataView or per-element Math calls.
 *
 * - bfloat16 is the top 16 bits of a float32 (same 8-bit exponent, 7-bit mantissa).
 * - float16 is IEEE 754 binary16 (5-bit exponent with bias 15, 10-bit mantissa, subnormals).
 *
 * Narrowing rounds to nearest, ties to even, as hardware and PyTorch do; NaN stays NaN (it is
 * never rounded into an infinity), infinities stay infinities, and float16 overflow gives ±inf.
 */

import { LoraTsError } from "../util/errors.js";
import { type AnyTypedArray, type DType, isFloat } from "./dtype.js";

/** A Uint32Array over the same bytes as `f`, so element i reads f[i]'s bit pattern. */
function bitsOf(f: Float32Array): Uint32Array {
  // A Float32Array's byteOffset is always a multiple of 4, so this view is always legal.
  return new Uint32Array(f.buffer, f.byteOffset, f.length);
}

/** float32 -> bfloat16 bits, rounding to nearest even. */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const u = bitsOf(src);
  const n = u.length;
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const x = u[i]!;
    if ((x & 0x7fffffff) > 0x7f800000) {
      // NaN: rounding could carry the payload into the exponent and give inf (0x7f800001 -> 0x7f80),
      // so keep sign and top payload bits and force the quiet bit, which keeps the result a NaN.
      out[i] = (x >>> 16) | 0x0040;
    } else {
      // Adding 0x7fff plus the lowest kept bit rounds the dropped 16 bits to nearest, ties to even.
      // A carry out of the mantissa correctly bumps the exponent (and the largest finite floats
      // round up to inf). x is non-negative as a JS number, so the sum cannot wrap below 2^32.
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/** bfloat16 bits -> float32 (exact: every bfloat16 value is a float32). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const n = src.length;
  const out = new Float32Array(n);
  const u = bitsOf(out);
  for (let i = 0; i < n; i++) u[i] = src[i]! << 16;
  return out;
}

/** float32 -> IEEE float16 bits, rounding to nearest even, with subnormals, ±inf and NaN. */
export function f32ToF16(src: Float32Array): Uint16Array {
  const u = bitsOf(src);
  const n = u.length;
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = f32BitsToF16(u[i]!);
  return out;
}

function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;

  if (exp === 0xff) {
    // inf stays inf; NaN keeps its top payload bits with the quiet bit set, so it stays a NaN.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }

  // Unbiased exponent re-biased for float16.
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00; // too large even before rounding: overflow to inf

  if (e <= 0) {
    // Result is a float16 subnormal (or zero): its unit is 2^-24. Values below 2^-25 (half a unit)
    // round to zero; this also covers float32 zeros and subnormals, which are far below it.
    if (e < -10) return sign;
    // The float32 value is m * 2^(e - 15 - 23) with the implicit leading 1 restored in m, i.e.
    // m >> (14 - e) units of 2^-24 (shift is 14..24), plus a remainder that decides rounding.
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) !== 0)) h++; // may carry into the smallest normal
    return sign | h;
  }

  // Normal: keep the top 10 mantissa bits, round on the 13 dropped ones. A carry out of the
  // mantissa bumps the exponent, and a carry out of exponent 30 gives 0x7c00 = inf, as it should.
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

/**
 * float16 -> float32 for all 65536 bit patterns, built on first use (256 KiB). A table lookup beats
 * decoding subnormals bit by bit, and the table itself is built with the exact arithmetic below.
 */
let f16Table: Uint32Array | undefined;

function buildF16Table(): Uint32Array {
  const t = new Uint32Array(65536);
  const scratch = new Float32Array(1);
  const scratchBits = bitsOf(scratch);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      // inf, or NaN with the payload moved to the top of the float32 mantissa.
      t[h] = sign | 0x7f800000 | (mant << 13);
    } else if (exp === 0) {
      // Zero or subnormal: mant * 2^-24, exact in float32 (which has far more range).
      scratch[0] = mant * 2 ** -24;
      t[h] = sign | scratchBits[0]!;
    } else {
      // Normal: re-bias the exponent from 15 to 127 and widen the mantissa.
      t[h] = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
  }
  return t;
}

/** IEEE float16 bits -> float32 (exact: every float16 value is a float32). */
export function f16ToF32(src: Uint16Array): Float32Array {
  f16Table ??= buildF16Table();
  const table = f16Table;
  const n = src.length;
  const out = new Float32Array(n);
  const u = bitsOf(out);
  for (let i = 0; i < n; i++) u[i] = table[src[i]!]!;
  return out;
}

/**
 * Converts a float array of any stored dtype to float32: float16/bfloat16 (raw bits in a Uint16Array)
 * are widened exactly, float64 is rounded to nearest. A float32 input is returned as-is (no copy),
 * so callers that mutate the result must copy it first. Non-float dtypes are rejected: converting
 * token ids or masks to floats is almost always a mistake worth hearing about.
 */
export function toFloat32(dtype: DType, data: AnyTypedArray): Float32Array {
  if (!isFloat(dtype)) throw new LoraTsError(`toFloat32: dtype ${dtype} is not a floating-point type`);
  const expected = dtype === "float32" ? Float32Array : dtype === "float64" ? Float64Array : Uint16Array;
  if (!(data instanceof expected)) {
    throw new LoraTsError(
      `toFloat32: dtype ${dtype} is stored in a ${expected.name}, but got a ${data.constructor.name}`,
    );
  }
  switch (dtype) {
    case "float32":
      return data as Float32Array;
    case "float64":
      return new Float32Array(data as Float64Array); // typed-array copy rounds each element
    case "float16":
      return f16ToF32(data as Uint16Array);
    default:
      return bf16ToF32(data as Uint16Array);
  }
}
