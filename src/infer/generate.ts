/**
 * Text generation: a prefill of the (left-padded) prompts, then one-token steps on the key/value
 * cache. Rows stop at an end-of-sequence id; the batch stops when every row has.
 */
import type { TensorValue } from "../graph/runtime.js";
import type { CacheTensors } from "../models/index.js";
import type { CausalLM } from "./causal-lm.js";
import { type SamplingOptions, sampleToken } from "./sampling.js";

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Stop ids; default: the model's eos_token_id list. Pass [] to never stop early. */
  eosIds?: number[];
  /** Seeded uniform [0, 1) source; used only when sampling (temperature > 0). */
  random?: () => number;
  /** Recompute the whole sequence at every step instead of using the cache (a check, slow). */
  noCache?: boolean;
  /** Adapter tensors or other extra graph inputs. */
  extraFeeds?: Record<string, TensorValue>;
  /** Called with each new token of each row, as it is chosen. */
  onToken?: (row: number, id: number) => void;
}

function lastRow(logits: TensorValue, b: number): Float32Array {
  const [, seq, vocab] = logits.dims as [number, number, number];
  const data = logits.data as Float32Array;
  const start = (b * seq + seq - 1) * vocab;
  return data.subarray(start, start + vocab);
}

/** Generates up to maxNewTokens ids after each prompt; returns the new ids only (eos included). */
export async function generate(
  lm: CausalLM,
  prompts: number[][],
  opts: GenerateOptions,
): Promise<number[][]> {
  const eos = new Set(opts.eosIds ?? lm.config.eosTokenIds);
  const random = opts.random ?? Math.random;
  const batch = prompts.length;
  const width = Math.max(...prompts.map((p) => p.length));
  // Left padding keeps every row's last prompt token in the last column.
  const padId = prompts[0]![0] ?? 0;
  const rows = prompts.map((p) => [...new Array<number>(width - p.length).fill(padId), ...p]);
  const mask = prompts.map((p) => [
    ...new Array<number>(width - p.length).fill(0),
    ...new Array<number>(p.length).fill(1),
  ]);
  const out: number[][] = prompts.map(() => []);
  const done = prompts.map(() => false);

  let cache: CacheTensors[] = lm.emptyCache(batch);
  let step = await lm.step(rows, cache, mask, opts.extraFeeds);
  for (let n = 0; n < opts.maxNewTokens; n++) {
    const next = prompts.map((_, b) =>
      done[b] ? padId : sampleToken(lastRow(step.logits, b), opts, random),
    );
    next.forEach((id, b) => {
      if (done[b]) return;
      out[b]!.push(id);
      opts.onToken?.(b, id);
      if (eos.has(id)) done[b] = true;
    });
    if (done.every(Boolean) || n === opts.maxNewTokens - 1) break;
    next.forEach((id, b) => {
      rows[b]!.push(id);
      mask[b]!.push(1);
    });
    if (opts.noCache) {
      step = await lm.step(rows, lm.emptyCache(batch), mask, opts.extraFeeds);
    } else {
      cache = step.present!;
      step = await lm.step(
        next.map((id) => [id]),
        cache,
        mask,
        opts.extraFeeds,
      );
    }
  }
  return out;
}
