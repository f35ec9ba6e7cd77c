import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, toFloat32 } from "../../src/graph/half.js";

const f16 = (x: number): number => f32ToF16(Float32Array.of(x))[0]!;
const bf16 = (x: number): number => f32ToBf16(Float32Array.of(x))[0]!;
const fromF16 = (h: number): number => f16ToF32(Uint16Array.of(h))[0]!;
const fromBf16 = (h: number): number => bf16ToF32(Uint16Array.of(h))[0]!;

/** The float32 whose bit pattern is `bits`. */
function f32FromBits(bits: number): number {
  return new Float32Array(Uint32Array.of(bits).buffer)[0]!;
}
function bitsOfF32(x: number): number {
  return new Uint32Array(Float32Array.of(x).buffer)[0]!;
}
const hex = (n: number): string => `0x${n.toString(16).padStart(4, "0")}`;
const isF16NaN = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x03ff) !== 0;
const isBf16NaN = (h: number): boolean => (h & 0x7f80) === 0x7f80 && (h & 0x007f) !== 0;

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("float16", () => {
  test("known values narrow to the right bits", () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2.5, 0xc100],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest finite
      [65519, 0x7bff], // below the midpoint to 65536: rounds down
      [65520, 0x7c00], // the midpoint ties to even, which is the (overflowing) 65536: inf
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [Number.POSITIVE_INFINITY, 0x7c00],
      [Number.NEGATIVE_INFINITY, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal, 6.103515625e-5
      [6.1e-5, 0x03ff], // just below it: the largest subnormal (6.0975552e-5) is nearest
      [1023 * 2 ** -24, 0x03ff],
      [2 ** -24, 0x0001], // smallest subnormal
      [-(2 ** -24), 0x8001],
      [2 ** -25, 0x0000], // exactly half the smallest subnormal: ties to even (zero)
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between subnormals 1 and 2: even is 2
      [5 * 2 ** -25, 0x0002], // tie between 2 and 3: even is 2
      [1e-10, 0x0000],
      [-1e-10, 0x8000],
      [f32FromBits(0x00000001), 0x0000], // float32 subnormal
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even is 1
      [1 + 3 * 2 ** -11, 0x3c02], // tie between mantissa 1 and 2: even is 2
      [2049, 0x6800], // tie between 2048 and 2050: even is 2048
      [2051, 0x6802], // tie between 2050 and 2052: even is 2052
      [2 ** -14 - 2 ** -25, 0x0400], // tie between largest subnormal (odd) and smallest normal
    ];
    for (const [x, want] of cases) {
      assert.equal(hex(f16(x)), hex(want), `f32ToF16(${x})`);
    }
  });

  test("NaN stays NaN, including payloads that only live in low float32 bits", () => {
    for (const bits of [0x7fc00000, 0xffc00000, 0x7f800001, 0x7fffffff, 0xff800001, 0x7f802000]) {
      const h = f16(f32FromBits(bits));
      assert.ok(isF16NaN(h), `bits 0x${bits.toString(16)} -> ${hex(h)} is not a NaN`);
      assert.equal(h & 0x8000, (bits >>> 16) & 0x8000, "sign kept");
    }
  });

  test("known values widen exactly", () => {
    assert.equal(fromF16(0x3c00), 1);
    assert.equal(fromF16(0xc100), -2.5);
    assert.equal(fromF16(0x7bff), 65504);
    assert.equal(fromF16(0x0400), 2 ** -14);
    assert.equal(fromF16(0x03ff), 1023 * 2 ** -24);
    assert.equal(fromF16(0x0001), 2 ** -24);
    assert.equal(fromF16(0x8001), -(2 ** -24));
    assert.ok(Object.is(fromF16(0x8000), -0));
    assert.ok(Object.is(fromF16(0x0000), 0));
    assert.equal(fromF16(0x7c00), Number.POSITIVE_INFINITY);
    assert.equal(fromF16(0xfc00), Number.NEGATIVE_INFINITY);
    assert.ok(Number.isNaN(fromF16(0x7e00)));
    assert.ok(Number.isNaN(fromF16(0x7c01)));
  });

  test("every float16 bit pattern survives f16 -> f32 -> f16", () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const back = f32ToF16(f16ToF32(all));
    for (let i = 0; i < 65536; i++) {
      if (isF16NaN(i)) assert.ok(isF16NaN(back[i]!), `NaN ${hex(i)} -> ${hex(back[i]!)}`);
      else assert.equal(hex(back[i]!), hex(i));
    }
  });

  test("every midpoint between neighbouring float16 values rounds to the even one", () => {
    // Finite non-negative float16 values increase with their bit pattern up to 0x7bff; 0x7c00 (inf)
    // plays the role of 65536 for rounding. Midpoints have 12 significant bits, exact in float32.
    const mids = new Float32Array(0x7c00);
    const below = new Float32Array(0x7c00);
    const above = new Float32Array(0x7c00);
    for (let k = 0; k < 0x7c00; k++) {
      const lo = fromF16(k);
      const hi = k === 0x7bff ? 65536 : fromF16(k + 1);
      const mid = (lo + hi) / 2;
      mids[k] = mid;
      assert.equal(mids[k], mid, "midpoint exact in float32");
      below[k] = f32FromBits(bitsOfF32(mid) - 1);
      above[k] = f32FromBits(bitsOfF32(mid) + 1);
    }
    const m = f32ToF16(mids);
    const b = f32ToF16(below);
    const a = f32ToF16(above);
    for (let k = 0; k < 0x7c00; k++) {
      const even = k % 2 === 0 ? k : k + 1;
      assert.equal(hex(m[k]!), hex(even), `midpoint above ${hex(k)}`);
      assert.equal(hex(b[k]!), hex(k), `just below midpoint above ${hex(k)}`);
      assert.equal(hex(a[k]!), hex(k + 1), `just above midpoint above ${hex(k)}`);
    }
  });

  test("random float32 values round to the nearest float16", () => {
    const rand = rng(1);
    const n = 20000;
    const xs = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      // Magnitudes from 2^-26 to 2^17 cover zero-rounding, subnormals, normals and overflow.
      xs[i] = (rand() < 0.5 ? -1 : 1) * 2 ** (rand() * 43 - 26) * (1 + rand());
    }
    const hs = f32ToF16(xs);
    const back = f16ToF32(hs);
    for (let i = 0; i < n; i++) {
      const x = xs[i]!;
      const got = back[i]!;
      if (Math.abs(x) >= 65520) {
        assert.equal(got, Math.sign(x) * Number.POSITIVE_INFINITY, `${x} overflows`);
        continue;
      }
      // The neighbours of the result bracket x, and the result is at least as close as either.
      const h = hs[i]!;
      const err = Math.abs(got - x);
      for (const nb of [h - 1, h + 1]) {
        if ((nb & 0x7fff) > 0x7bff || (nb & 0x8000) !== (h & 0x8000)) continue;
        assert.ok(err <= Math.abs(fromF16(nb) - x), `${x} -> ${got}, but ${fromF16(nb)} is nearer`);
      }
      assert.equal((h & 0x8000) !== 0, x < 0, `sign of ${x} -> ${hex(h)}`);
    }
  });
});

describe("bfloat16", () => {
  test("known values narrow to the right bits", () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3f80],
      [-2.5, 0xc020],
      [65504, 0x4780], // 65504 = 0x477fe000 rounds up to 65536
      [Number.POSITIVE_INFINITY, 0x7f80],
      [Number.NEGATIVE_INFINITY, 0xff80],
      [f32FromBits(0x7f7fffff), 0x7f80], // largest float32 rounds up to inf
      [f32FromBits(0x7f7f7fff), 0x7f7f], // just under the midpoint: stays finite
      [1 + 2 ** -8, 0x3f80], // tie between 1 and 1+2^-7: even is 1
      [1 + 3 * 2 ** -8, 0x3f82], // tie between mantissa 1 and 2: even is 2
      [1 + 2 ** -8 + 2 ** -20, 0x3f81], // just above the tie: rounds up
      [f32FromBits(0x00000001), 0x0000], // float32 subnormals keep their top bits
      [f32FromBits(0x00018000), 0x0002], // subnormal tie between 1 and 2: even is 2
      [6.1e-5, 0x3880],
    ];
    for (const [x, want] of cases) {
      assert.equal(hex(bf16(x)), hex(want), `f32ToBf16(${x})`);
    }
  });

  test("NaN stays NaN, including payloads that only live in low bits", () => {
    for (const bits of [0x7fc00000, 0xffc00000, 0x7f800001, 0x7f80ffff, 0xff800001, 0x7fffffff]) {
      const h = bf16(f32FromBits(bits));
      assert.ok(isBf16NaN(h), `bits 0x${bits.toString(16)} -> ${hex(h)} is not a NaN`);
      assert.equal(h & 0x8000, (bits >>> 16) & 0x8000, "sign kept");
    }
  });

  test("known values widen exactly", () => {
    assert.equal(fromBf16(0x3f80), 1);
    assert.equal(fromBf16(0xc020), -2.5);
    assert.ok(Object.is(fromBf16(0x8000), -0));
    assert.equal(fromBf16(0x7f80), Number.POSITIVE_INFINITY);
    assert.equal(fromBf16(0xff80), Number.NEGATIVE_INFINITY);
    assert.ok(Number.isNaN(fromBf16(0x7fc0)));
    assert.equal(fromBf16(0x0001), f32FromBits(0x00010000));
  });

  test("every bfloat16 bit pattern survives bf16 -> f32 -> bf16", () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) all[i] = i;
    const back = f32ToBf16(bf16ToF32(all));
    for (let i = 0; i < 65536; i++) {
      if (isBf16NaN(i)) assert.ok(isBf16NaN(back[i]!), `NaN ${hex(i)} -> ${hex(back[i]!)}`);
      else assert.equal(hex(back[i]!), hex(i));
    }
  });

  test("every midpoint between neighbouring bfloat16 values rounds to the even one", () => {
    const n = 0x7f80; // finite non-negative patterns; 0x7f7f's upper neighbour is inf
    const mids = new Float32Array(new Uint32Array(n).map((_, k) => (k << 16) | 0x8000).buffer);
    const got = f32ToBf16(mids);
    for (let k = 0; k < n; k++)
      assert.equal(hex(got[k]!), hex(k % 2 === 0 ? k : k + 1), `midpoint above ${hex(k)}`);
  });

  test("random f32 -> bf16 -> f32 is within 2^-8 relative error", () => {
    const rand = rng(2);
    const n = 100000;
    const xs = new Float32Array(n);
    for (let i = 0; i < n; i++) xs[i] = (rand() - 0.5) * 2 ** (rand() * 200 - 100);
    const back = bf16ToF32(f32ToBf16(xs));
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const x = xs[i]!;
      if (x === 0) continue;
      worst = Math.max(worst, Math.abs(back[i]! - x) / Math.abs(x));
    }
    assert.ok(worst <= 2 ** -8, `worst relative error ${worst}`);
    assert.ok(worst > 0, "some values must actually be rounded");
  });
});

describe("toFloat32", () => {
  test("converts every float dtype", () => {
    const f32 = Float32Array.of(1, -2.5, 0.1);
    assert.equal(toFloat32("float32", f32), f32, "float32 is returned as-is");
    assert.deepEqual([...toFloat32("float64", Float64Array.of(1, -2.5, 0.1))], [...f32]);
    assert.deepEqual([...toFloat32("float16", Uint16Array.of(0x3c00, 0xc100, 0x7c00))], [1, -2.5, Infinity]);
    assert.deepEqual(
      [...toFloat32("bfloat16", Uint16Array.of(0x3f80, 0xc020, 0xff80))],
      [1, -2.5, -Infinity],
    );
  });

  test("rejects non-float dtypes and mismatched arrays", () => {
    assert.throws(() => toFloat32("int32", Int32Array.of(1)), /int32 is not a floating-point type/);
    assert.throws(() => toFloat32("float16", Float32Array.of(1)), /Uint16Array/);
  });
});
