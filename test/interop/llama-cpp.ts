/**
 * node-llama-cpp (llama.cpp's own code, prebuilt) for the interop tests, loaded from
 * test/interop/node_modules, which only `npm ci --prefix test/interop` installs: it is a test-only
 * dependency of ~730 MB that users of lora-ts never download. When it is absent, `LLAMA_CPP` is the
 * skip message every interop test passes as its `skip` option.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { REPO_ROOT } from "../helpers/shared.js";

/** The part of node-llama-cpp 3.21.1's API these tests use. */
export interface LlamaModel {
  tokenize(text: string, specialTokens?: boolean): number[];
  createContext(o: {
    contextSize: number;
    threads?: number;
    lora?: { adapters: { filePath: string; scale?: number }[] };
  }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
interface LlamaSequence {
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], o: { temperature: number; yieldEogToken?: boolean }): AsyncGenerator<number>;
  controlledEvaluate(
    input: (number | [number, { generateNext: { probabilities: true } }])[],
  ): Promise<({ next: { probabilities?: Map<number, number> } } | undefined)[]>;
}
interface Llama {
  loadModel(o: { modelPath: string; vocabOnly?: boolean }): Promise<LlamaModel>;
}

/**
 * One thread: llama.cpp's workers spin at each barrier, and on a shared, oversubscribed machine two of
 * them took minutes for what one thread does in a second. These models are tiny; speed is not the point.
 */
const THREADS = 1;

const ENTRY = join(REPO_ROOT, "test/interop/node_modules/node-llama-cpp/dist/index.js");
export const NEEDS = "needs node-llama-cpp: npm ci --prefix test/interop";

async function load(): Promise<Llama | string> {
  if (!existsSync(ENTRY)) return NEEDS;
  try {
    const m = (await import(pathToFileURL(ENTRY).href)) as {
      getLlama(o: { gpu: false; build: "never"; logLevel: string }): Promise<Llama>;
    };
    // CPU only and never a source build: the prebuilt binary or a skip.
    return await m.getLlama({ gpu: false, build: "never", logLevel: "error" });
  } catch (e) {
    return `${NEEDS} (its prebuilt binary did not load: ${(e as Error).message.split("\n")[0]})`;
  }
}

const loaded = await load();
/** The skip option: false when node-llama-cpp is there, else the message. */
export const LLAMA_CPP: string | false = typeof loaded === "string" ? loaded : false;

export function llama(): Llama {
  if (typeof loaded === "string") throw new Error(loaded);
  return loaded;
}

/** Greedy continuation of `prompt` by llama.cpp: `n` new token ids. */
export async function llamaGreedy(
  modelPath: string,
  prompt: number[],
  n: number,
  adapters: { filePath: string; scale: number }[] = [],
): Promise<number[]> {
  const model = await llama().loadModel({ modelPath });
  try {
    const ctx = await model.createContext({
      contextSize: Math.max(256, prompt.length + n + 8),
      threads: THREADS,
      ...(adapters.length > 0 ? { lora: { adapters } } : {}),
    });
    try {
      const out: number[] = [];
      // lora-ts stops at the model's EOS only; llama.cpp also at tokens it deems end-of-generation by
      // their text (<|im_end|>, ...): yielded here, and evaluation goes on after them.
      for await (const t of ctx.getSequence().evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
        out.push(t);
        if (out.length >= n) break;
      }
      return out;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/**
 * Greedy continuations of several prompts from one model (+ adapters) load and one context, its
 * sequence cleared between prompts: `n[i]` new ids for prompt i (end-of-generation tokens included).
 */
export async function llamaGreedyEach(
  modelPath: string,
  prompts: number[][],
  n: number[],
  adapters: { filePath: string; scale: number }[] = [],
): Promise<number[][]> {
  const model = await llama().loadModel({ modelPath });
  try {
    const longest = Math.max(...prompts.map((p, i) => p.length + n[i]!));
    const ctx = await model.createContext({
      contextSize: Math.max(256, longest + 8),
      threads: THREADS,
      ...(adapters.length > 0 ? { lora: { adapters } } : {}),
    });
    try {
      const seq = ctx.getSequence();
      const all: number[][] = [];
      for (const [i, prompt] of prompts.entries()) {
        await seq.clearHistory();
        const out: number[] = [];
        for await (const t of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
          out.push(t);
          if (out.length >= n[i]!) break;
        }
        all.push(out);
      }
      return all;
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** Perplexity llama.cpp gives `ids` (the first token is context only): exp of the mean -log p. */
export async function llamaPerplexity(modelPath: string, ids: number[]): Promise<number> {
  const model = await llama().loadModel({ modelPath });
  try {
    const ctx = await model.createContext({ contextSize: Math.max(256, ids.length + 8), threads: THREADS });
    try {
      const input = ids.map((id, i) =>
        i < ids.length - 1
          ? ([id, { generateNext: { probabilities: true } }] as [
              number,
              { generateNext: { probabilities: true } },
            ])
          : id,
      );
      const res = await ctx.getSequence().controlledEvaluate(input);
      let nll = 0;
      for (let i = 0; i < ids.length - 1; i++) {
        const p = res[i]?.next.probabilities?.get(ids[i + 1]!) ?? 0;
        nll -= Math.log(Math.max(p, 1e-30));
      }
      return Math.exp(nll / (ids.length - 1));
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/**
 * llama.cpp's tokenization of each text (no BOS), from one model load. `special`: control tokens
 * written in the text are parsed as tokens (as lora-ts always does with added tokens); user-defined
 * ones llama.cpp parses either way.
 */
export async function llamaTokenize(
  modelPath: string,
  texts: string[],
  special = false,
): Promise<number[][]> {
  const model = await llama().loadModel({ modelPath, vocabOnly: true });
  try {
    return texts.map((t) => [...model.tokenize(t, special)]);
  } finally {
    await model.dispose();
  }
}
