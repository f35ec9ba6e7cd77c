/**
 * Log-probabilities of a token and of the most likely alternatives, from one row of raw logits:
 * log softmax(z)ᵢ = zᵢ − max − log Σⱼ exp(zⱼ − max), summed in float64.
 */
import type { TopLogprob } from "./engine-types.js";

export function tokenLogprobs(
  logits: ArrayLike<number>,
  id: number,
  top: number,
): { logprob: number; top: TopLogprob[] } {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const logZ = max + Math.log(sum);
  // The k best by a running insertion into a short sorted list (k is small), ties by lower id.
  const best: number[] = [];
  if (top > 0) {
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i]!;
      if (best.length === top && v <= logits[best[top - 1]!]!) continue;
      let j = best.length < top ? best.length : top - 1;
      best[j] = i;
      while (j > 0 && logits[best[j - 1]!]! < v) {
        best[j] = best[j - 1]!;
        best[j - 1] = i;
        j--;
      }
    }
  }
  return {
    logprob: logits[id]! - logZ,
    top: best.map((i) => ({ id: i, logprob: logits[i]! - logZ })),
  };
}
