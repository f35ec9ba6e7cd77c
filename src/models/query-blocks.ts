/**
 * Causal attention in query blocks, for training (no KV cache). The queries are cut into n blocks
 * of t/n positions (the last takes the rest, sizes read at run time); block i attends to the keys of
 * blocks 0..i only, which are all a causal mask lets it see. So the masked upper part of Q·Kᵀ is
 * not computed: with 4 blocks, 10 of 16 score tiles instead of 16. The [rows, keys] score tensors,
 * the largest transients of a long sequence, are also at most a quarter as tall.
 *
 * One region (graph/ir.ts) whose saved values are the whole q, keys, values, bias and output, as
 * transformer.ts attentionCore's: the blocks' slices exist only while a block is computed, in the
 * forward pass and again in the backward pass. Per block i, with Kᵢ, Vᵢ the key prefix and Pᵢ its
 * recomputed probabilities:
 *
 *   Oᵢ = Pᵢ·Vᵢ    dSᵢ = Pᵢ ⊙ (dOᵢ·Vᵢᵀ − rowsum(dOᵢ ⊙ Oᵢ))    dQᵢ = s·dSᵢ·Kᵢ
 *   dK = Σᵢ s·dSᵢᵀ·Qᵢ    dV = Σᵢ Pᵢᵀ·dOᵢ     (each padded with zeros past the prefix)
 *
 * A query row that is all padding (every key masked) attends uniformly to its prefix instead of to
 * every key: such rows carry no loss, and no real query attends to a padded key, so the loss and
 * its gradients are those of the unblocked path.
 */
import { gate, gateFlag } from "../graph/checkpoint.js";
import type { Value } from "../graph/ir.js";
import * as o from "../graph/ops.js";
import { type Dim, mulDims } from "../graph/shape.js";

/**
 * softmax(s·Q·Kᵀ + bias)·V for q [batch, kvH, groups, t, d] (grouped queries, t positions each),
 * key/value [batch, kvH, t, d] and bias [batch|1, 1, groups·t, t] (group-major rows, as
 * transformer.ts attentionBias), in `n` query blocks. Returns [batch, kvH, groups, t, d].
 */
export function blockedAttention(
  q: Value,
  key: Value,
  value: Value,
  bias: Value,
  scale: number,
  n: number,
): Value {
  const t = q.shape[3]!;
  const [out] = q.graph.region({
    name: "attention in query blocks",
    inputs: [q, key, value],
    forward: () => {
      const blocks = cut(q, key, value, bias, n);
      const outs = blocks.map((b) => o.product(probs(b, scale), b.value, false, false));
      const out = o.concat(
        outs.map((x) => splitGroups(x, q)),
        3,
        t,
      );
      return { outputs: [out], saved: [q, key, value, bias, out] };
    },
    backward: ([q, key, value, bias, out], [dOut], needs) => {
      // The recomputed cut reads its inputs through a gate on the incoming gradient: the same Split
      // nodes on the same inputs would be merged with the forward pass's by onnxruntime's
      // common-subexpression elimination, keeping every layer's blocks alive until the backward
      // pass (SmolLM-135M all-linear 4×256: peak RSS 2.9 → 4.1 GB without the gate).
      const flag = gateFlag([dOut!]);
      const blocks = cut(gate(q!, flag), gate(key!, flag), gate(value!, flag), gate(bias!, flag), n);
      const dOuts = o.splitBy(dOut!, 3, blocks[0]!.sizes, names(n));
      const outs = o.splitBy(out!, 3, blocks[0]!.sizes, names(n));
      const dQ: Value[] = [];
      const dK: Value[] = [];
      const dV: Value[] = [];
      blocks.forEach((b, i) => {
        const dO = mergeAxes(dOuts[i]!, 2);
        // The incoming gradient first, the recomputation after it (see attentionCore).
        const dProbs = o.product(dO, b.value, false, true);
        const rowDot = o.reduceSum(o.mul(dO, mergeAxes(outs[i]!, 2)), [-1], true);
        const p = probs(b, scale);
        const dScores = o.mul(o.sub(dProbs, rowDot), p);
        if (needs[0]) dQ.push(splitGroups(o.product(dScores, b.key, false, false, scale), q!));
        if (needs[1]) dK.push(padKeys(o.product(dScores, b.q, true, false, scale), key!));
        if (needs[2]) dV.push(padKeys(o.product(p, dO, true, false), value!));
      });
      const sum = (xs: Value[]) => xs.reduce((a, x) => o.add(a, x));
      return [needs[0] ? o.concat(dQ, 3, t) : null, needs[1] ? sum(dK) : null, needs[2] ? sum(dV) : null];
    },
  });
  return out!;
}

/** One query block: its rows (queries merged over groups), its key prefix and its bias. */
interface Block {
  /** [batch, kvH, groups·rows, d] */
  q: Value;
  /** The key and value prefix [batch, kvH, keys, d] it may attend to. */
  key: Value;
  value: Value;
  /** [batch|1, 1, groups·rows, keys] */
  bias: Value;
  /** int64 [n]: every block's number of positions. */
  sizes: Value;
}

function names(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `qblock${i}`);
}

/** Cuts q, the keys, the values and the bias into the n blocks. */
function cut(q: Value, key: Value, value: Value, bias: Value, n: number): Block[] {
  const g = q.graph;
  const [, , groups, t] = q.shape as [Dim, number, number, Dim];
  // Block sizes at run time: ⌊t/n⌋ each, the last one the rest.
  const total = o.slice(o.shapeOf(q), [3], [4], [0]);
  const each = g.addNode("Div", [total, o.i64(g, [n])], {}, [{ dtype: "int64", shape: [1] }]).outputs[0]!;
  const last = o.sub(total, o.mul(each, o.i64(g, [n - 1])));
  const sizes = o.concat([...Array.from({ length: n - 1 }, () => each), last], 0);
  const rows = names(n);
  const qs = o.splitBy(q, 3, sizes, rows);
  const ks = o.splitBy(key, 2, sizes, rows);
  const vs = o.splitBy(value, 2, sizes, rows);
  const biasRows = o.splitBy(o.reshape(bias, [bias.dim(0), 1, groups, t, t]), 3, sizes, rows);
  return rows.map((r, i) => {
    const isLast = i === n - 1;
    const keys: Dim = isLast ? t : i === 0 ? r : `qblock_keys${i}`;
    const prefix = (parts: Value[], axis: number) =>
      i === 0 ? parts[0]! : o.concat(parts.slice(0, i + 1), axis, keys);
    const b = isLast ? biasRows[i]! : prefix(o.splitBy(biasRows[i]!, 4, sizes, rows), 4);
    return {
      q: mergeAxes(qs[i]!, 2),
      key: isLast ? key : prefix(ks, 2),
      value: isLast ? value : prefix(vs, 2),
      bias: mergeAxes(b, 2),
      sizes,
    };
  });
}

function probs(b: Block, scale: number): Value {
  return o.softmax(o.add(o.product(b.q, b.key, false, true, scale), b.bias), -1);
}

/** [batch, kvH, groups·rows, d] back to [batch, kvH, groups, rows, d]. */
function splitGroups(x: Value, q: Value): Value {
  const [b, kvH, groups, , d] = q.shape as [Dim, number, number, Dim, number];
  return o.reshape(x, [b, kvH, groups, -1, d]);
}

/** A key prefix's gradient [batch, kvH, keys, d] padded with zeros to the whole keys. */
function padKeys(x: Value, like: Value): Value {
  if (x.shape[2] === like.shape[2]) return x;
  const g = x.graph;
  const missing = o.sub(o.slice(o.shapeOf(like), [2], [3], [0]), o.slice(o.shapeOf(x), [2], [3], [0]));
  const zero = o.i64(g, [0]);
  const pads = o.concat([zero, zero, zero, zero, zero, zero, missing, zero], 0);
  return o.pad(x, pads, like.shape);
}

/** Axes a and a+1 merged into one, by the run-time shape (two symbolic dims need no name lookup). */
function mergeAxes(x: Value, a: number): Value {
  const sh = o.shapeOf(x);
  const parts = [o.i64(x.graph, [-1])];
  if (a > 0) parts.unshift(o.slice(sh, [0], [a], [0]));
  if (a + 2 < x.rank) parts.push(o.slice(sh, [a + 2], [x.rank], [0]));
  const shape = [...x.shape.slice(0, a), mulDims(x.shape[a]!, x.shape[a + 1]!), ...x.shape.slice(a + 2)];
  return x.graph.addNode("Reshape", [x, o.concat(parts, 0)], {}, [{ dtype: x.dtype, shape }]).outputs[0]!;
}
