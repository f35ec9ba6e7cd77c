/**
 * Greedy answers to prompts from the base model or the base with an adapter, as `lora-ts generate
 * --prompt P --adapter DIR` gives them: the same prompt encoding (infer/prompt.ts), the same greedy
 * generation and stop tokens. Each call builds a forward session and releases it; the model's weights
 * stay open for the next call.
 */

import type { SessionOptions } from "../graph/session-options.js";
import { CausalLM } from "../infer/causal-lm.js";
import { generate } from "../infer/generate.js";
import { encodePrompt } from "../infer/prompt.js";
import type { Adapter } from "../lora/adapter.js";
import type { WebModel } from "./model-files.js";
import type { GenerationResult } from "./protocol.js";

export async function greedyAnswers(
  web: WebModel,
  adapter: Adapter | null,
  prompts: readonly string[],
  maxNewTokens: number,
  session: SessionOptions = {},
): Promise<GenerationResult[]> {
  const { model, tokenizer } = web;
  const adapters = adapter ? [{ name: "adapter", adapter }] : [];
  const lm = await CausalLM.fromModel(model, tokenizer, { adapters, session });
  try {
    const extraFeeds = lm.adapterFeeds(adapter ? "adapter" : null);
    const results: GenerationResult[] = [];
    for (const prompt of prompts) {
      const promptIds = encodePrompt(tokenizer, model.tokenizerConfig, prompt);
      const ids = (await generate(lm, [promptIds], { maxNewTokens, extraFeeds }))[0]!;
      results.push({ prompt, promptIds, ids, text: tokenizer.decode(ids, { skipSpecial: true }) });
    }
    return results;
  } finally {
    // The session only: the weights belong to the page's model and serve later sessions.
    await lm.runner.session.release();
  }
}
