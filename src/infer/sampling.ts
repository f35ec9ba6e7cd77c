/**
 * Next-token choice from one row of logits. temperature 0 (the default) is greedy: the arg-max,
 * lowest id on ties. Otherwise, in Hugging Face's order: logits / temperature, keep the top-k,
 * keep the smallest set whose probability reaches top-p, renormalise, draw with `random()`.
 */
export interface SamplingOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

export function sampleToken(row: ArrayLike<number>, opts: SamplingOptions, random: () => number): number {
  const t = opts.temperature ?? 0;
  if (t <= 0) return argmax(row);
  // Candidates sorted by logit, best first; stable on ties by id.
  let ids = Array.from({ length: row.length }, (_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b);
  if (opts.topK && opts.topK > 0 && opts.topK < ids.length) {
    // As Hugging Face's TopKLogitsWarper: drop what is below the k-th score, so ties with it stay.
    const kth = row[ids[opts.topK - 1]!]!;
    ids = ids.filter((i) => row[i]! >= kth);
  }
  const max = row[ids[0]!]! / t;
  let probs = ids.map((i) => Math.exp(row[i]! / t - max));
  let sum = probs.reduce((a, b) => a + b, 0);
  const topP = opts.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length) {
      acc += probs[keep]! / sum;
      keep++;
      if (acc >= topP) break;
    }
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
  }
  let u = random() * sum;
  for (let k = 0; k < ids.length; k++) {
    u -= probs[k]!;
    if (u <= 0) return ids[k]!;
  }
  return ids[ids.length - 1]!;
}
