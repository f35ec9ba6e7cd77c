/**
 * Frozen linear weights in int8, for onnxruntime's DynamicQuantizeMatMul (com.microsoft): y = A·B with
 * A float (quantized per tensor, as uint8, at run time) and B int8 [K, N] with a scale per column.
 *
 * A frozen W [out, in] is stored as W ≈ diag(s)·Q, Q int8 with one symmetric scale per output row
 * (s = max|row| / 127). Then
 *
 *   y   = x·Wᵀ  = DynamicQuantizeMatMul(x, Qᵀ, s)            (column scales of Qᵀ: s)
 *   d x = dy·W  = DynamicQuantizeMatMul(dy ⊙ s, Q, 1)
 *
 * so both products run on int8 (VNNI) kernels. Q and Qᵀ together take half the bytes of W in float32,
 * and the float32 weight is not loaded at all.
 *
 * On an x86 CPU without VNNI, onnxruntime's uint8 × int8 kernel multiplies with VPMADDUBSW, whose
 * int16 sums of two products saturate (255·127·2 > 32767): measured on a Zen 2 host, the default
 * model's loss drifted 2.5% from float32 by step 10. There Q is kept to ±63 (255·63·2 < 32767), what
 * onnxruntime's own quantizer calls reduce_range; ort-node.ts's int8WeightMax decides which.
 */
import type { Value } from "./ir.js";
import * as o from "./ops.js";

export interface Int8Weight {
  /** Q [out, in], row-major. */
  q: Int8Array;
  /** Qᵀ [in, out], row-major. */
  qT: Int8Array;
  /** Per output row: W[r, :] ≈ Q[r, :]·scale[r]. */
  scale: Float32Array;
  out: number;
  in: number;
}

/**
 * Quantizes W [out, in] given row-major, or given as Wᵀ [in, out] when `transposed` (GPT-2's Conv1D
 * layout), to integers in [-qmax, qmax] (127, or 63 where the CPU's kernel would saturate; see the
 * module comment). Rounding is to nearest (ties to even); an all-zero row gets scale 0 (it must not
 * inflate the range of dy ⊙ s, which is quantized as one tensor).
 */
export function quantizeRows(
  stored: Float32Array,
  out: number,
  inF: number,
  transposed = false,
  qmax = 127,
): Int8Weight {
  const scale = new Float32Array(out);
  const q = new Int8Array(out * inF);
  const qT = new Int8Array(out * inF);
  if (transposed) {
    for (let i = 0; i < inF; i++) {
      const row = i * out;
      for (let r = 0; r < out; r++) scale[r] = Math.max(scale[r]!, Math.abs(stored[row + r]!));
    }
    const inv = new Float32Array(out);
    for (let r = 0; r < out; r++) {
      scale[r] = scale[r]! / qmax;
      inv[r] = scale[r]! > 0 ? 1 / scale[r]! : 0;
    }
    for (let i = 0; i < inF; i++) {
      const row = i * out;
      for (let r = 0; r < out; r++) qT[row + r] = roundNearest(stored[row + r]! * inv[r]!);
    }
    transposeInto(qT, inF, out, q);
  } else {
    // One row at a time while it is in cache: its largest magnitude, then its quantized values (a
    // 1B model's session build quantizes 1.2 billion weights).
    for (let r = 0; r < out; r++) {
      const row = r * inF;
      let m = 0;
      for (let i = 0; i < inF; i++) m = Math.max(m, Math.abs(stored[row + i]!));
      const s = Math.fround(m / qmax);
      scale[r] = s;
      const k = s > 0 ? Math.fround(1 / s) : 0;
      for (let i = 0; i < inF; i++) q[row + i] = roundNearest(stored[row + i]! * k);
    }
    transposeInto(q, out, inF, qT);
  }
  return { q, qT, scale, out, in: inF };
}

/** 1.5·2^52: adding and subtracting it rounds a double of magnitude < 2^51 to an integer. */
const ROUND = 6755399441055744;

/**
 * x rounded to the nearest integer, ties to even, with two additions and no branch: on real weights
 * (random signs, many values near 0) a sign test or Math.round measured 8-10 ns per weight, this 2.
 */
function roundNearest(x: number): number {
  return x + ROUND - ROUND;
}

/**
 * dst = srcᵀ for src [rows, cols], in 16×16 tiles written a destination row at a time: measured 1.8
 * ns per element against 3.0 for 64×64 tiles walked in source order (a session build of a 1B model
 * transposes a billion of them).
 */
function transposeInto(src: Int8Array, rows: number, cols: number, dst: Int8Array): void {
  const T = 16;
  for (let r0 = 0; r0 < rows; r0 += T)
    for (let c0 = 0; c0 < cols; c0 += T) {
      const r1 = Math.min(rows, r0 + T);
      const c1 = Math.min(cols, c0 + T);
      for (let c = c0; c < c1; c++) {
        const d = c * rows;
        for (let r = r0; r < r1; r++) dst[d + r] = src[r * cols + c]!;
      }
    }
}

/** a·B for a float a [..., K], an int8 B [K, N] and its column scales ([N] or a scalar). */
export function int8Product(a: Value, b: Value, scale: Value): Value {
  return a.graph.addNode(
    "DynamicQuantizeMatMul",
    [a, b, scale],
    {},
    [{ dtype: "float32", shape: [...a.shape.slice(0, -1), b.dim(1)] }],
    "com.microsoft",
  ).outputs[0]!;
}

/** What a forward product x·Wᵀ needs of a quantized W: Qᵀ [in, out] and the scales [out]. */
export interface Int8Forward {
  qT: Value;
  scale: Value;
}

/** The int8 tensors of one weight in a graph: Q [out, in] (for d x), Qᵀ [in, out], scale [out]. */
export interface Int8Values extends Int8Forward {
  q: Value;
}

/** y = x·Wᵀ for a frozen, quantized W; the backward pass gives d x only. */
export function int8Linear(x: Value, w: Int8Values): Value {
  const [y] = x.graph.region({
    name: "int8Linear",
    inputs: [x],
    forward: () => ({ outputs: [int8Product(x, w.qT, w.scale)], saved: [w.q, w.scale] }),
    backward: ([q, scale], [dy]) => [int8Product(o.mul(dy, scale), q, o.scalar(dy.graph, 1))],
  });
  return y;
}
