/** `lora-ts generate` and `lora-ts logits`. */
import type { Command } from "commander";
import { generate } from "../infer/generate.js";
import { loadCausalLM } from "../infer/load-causal-lm.js";
import { encodePrompt } from "../infer/prompt.js";
import { familyOf } from "../models/family.js";
import { preview } from "../util/describe.js";
import { LoraTsError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import {
  checkIdsInVocab,
  chooseAdapter,
  collect,
  parseAdapterSpecs,
  parseIds,
  parseNumber,
} from "./parse.js";

interface AdapterFlags {
  adapter?: string[];
  use?: string;
}

const ADAPTER_HELP =
  "LoRA adapter directory, GGUF LoRA adapter (.gguf) or hub id org/name[@revision], or name=DIR (repeatable)";
const MODEL_HELP = "Hugging Face model directory, .gguf file or hub id org/name[@revision]";
const USE_HELP = 'adapter to use when several are loaded ("none": the base model)';

/** Loads the model with the --adapter flags; returns it with the feeds of the --use choice. */
async function loadWithAdapters(model: string, f: AdapterFlags) {
  const specs = parseAdapterSpecs(f.adapter);
  const use = chooseAdapter(specs, f.use);
  const lm = await loadCausalLM(model, { adapters: specs });
  return { lm, feeds: lm.adapterFeeds(use) };
}

interface GenerateFlags extends AdapterFlags {
  model: string;
  prompt?: string;
  promptIds?: string;
  maxNewTokens: string;
  temperature: string;
  topK?: string;
  topP?: string;
  seed: string;
  json?: boolean;
}

export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description("continue a prompt with the model (greedy unless --temperature > 0)")
    .requiredOption("--model <dir>", MODEL_HELP)
    .option("--adapter <dir>", ADAPTER_HELP, collect)
    .option("--use <name>", USE_HELP)
    .option("--prompt <text>", "prompt text, encoded by the model's tokenizer")
    .option("--prompt-ids <ids>", "prompt token ids instead of text, e.g. 1,2,3")
    .option("--max-new-tokens <n>", "tokens to generate", "64")
    .option("--temperature <t>", "0 = greedy", "0")
    .option("--top-k <k>", "keep the k most likely tokens")
    .option("--top-p <p>", "keep the smallest set of tokens with probability >= p")
    .option("--seed <s>", "seed for sampling", "0")
    .option("--json", 'print {"prompt_ids","ids","text"}')
    .action(async (f: GenerateFlags) => {
      if ((f.prompt === undefined) === (f.promptIds === undefined)) {
        throw new LoraTsError("generate: give exactly one of --prompt and --prompt-ids");
      }
      // Every flag is checked before the model loads and before anything is written to stdout.
      const maxNewTokens = parseNumber("--max-new-tokens", f.maxNewTokens, { integer: true, min: 1 });
      const temperature = parseNumber("--temperature", f.temperature, { min: 0 });
      const topK =
        f.topK === undefined ? undefined : parseNumber("--top-k", f.topK, { integer: true, min: 1 });
      const topP = f.topP === undefined ? undefined : parseNumber("--top-p", f.topP, { min: 0 });
      if (topP !== undefined && !(topP > 0 && topP <= 1))
        throw new LoraTsError(`--top-p: expected a number in (0, 1], got ${preview(f.topP)}`);
      const seed = parseNumber("--seed", f.seed, { integer: true });
      const rawIds = f.promptIds === undefined ? undefined : parseIds("--prompt-ids", f.promptIds);
      if (temperature === 0 && (topK !== undefined || topP !== undefined)) {
        // As Hugging Face warns for top_k/top_p without do_sample: greedy decoding ignores them.
        process.stderr.write("warning: --top-k and --top-p have no effect at --temperature 0 (greedy)\n");
      }
      const { lm, feeds } = await loadWithAdapters(f.model, f);
      let promptIds: number[];
      if (rawIds !== undefined) {
        promptIds = rawIds;
      } else {
        if (!lm.tokenizer) throw new LoraTsError(`${f.model}: no tokenizer.json, use --prompt-ids`);
        promptIds = encodePrompt(lm.tokenizer, lm.model.tokenizerConfig, f.prompt!);
      }
      checkIdsInVocab("--prompt-ids", promptIds, lm.config.vocabSize);
      if (promptIds.length === 0) throw new LoraTsError("generate: the prompt is empty");
      // The model's context (max_position_embeddings) bounds prompt + generated tokens.
      // Learned positions end at the context: stop there. Rotary ones go on, as in HF and llama.cpp.
      const context = lm.config.maxPositions;
      const hard = familyOf(lm.config).hardContext;
      if (hard && promptIds.length >= context)
        throw new LoraTsError(
          `generate: the prompt has ${promptIds.length} tokens, the model's context is ${context}`,
        );
      let newTokens = maxNewTokens;
      if (promptIds.length + newTokens > context) {
        if (hard) newTokens = context - promptIds.length;
        process.stderr.write(
          `warning: prompt (${promptIds.length}) + --max-new-tokens (${maxNewTokens}) exceed the model's context ` +
            `(${context}); ${hard ? `generating at most ${newTokens} tokens` : "positions past it were not trained"}\n`,
        );
      }
      const rng = new Rng(seed);
      const decode = (ids: number[]) => lm.tokenizer?.decode(ids, { skipSpecial: true }) ?? "";
      const streamed: number[] = [];
      if (!f.json && f.prompt !== undefined) process.stdout.write(f.prompt);
      const ids = (
        await generate(lm, [promptIds], {
          maxNewTokens: newTokens,
          temperature,
          topK,
          topP,
          random: () => rng.float(),
          extraFeeds: feeds,
          onToken: f.json
            ? undefined
            : (_, id) => {
                // Stream text as it grows (decoding the whole tail keeps multi-byte pieces intact).
                const before = decode(streamed);
                streamed.push(id);
                process.stdout.write(decode(streamed).slice(before.length));
              },
        })
      )[0]!;
      if (f.json) {
        process.stdout.write(`${JSON.stringify({ prompt_ids: promptIds, ids, text: decode(ids) })}\n`);
      } else {
        process.stdout.write("\n");
      }
      await lm.release();
    });

  program
    .command("logits")
    .description("print the float32 logits at every position (a verification aid for small models)")
    .requiredOption("--model <dir>", MODEL_HELP)
    .option("--adapter <dir>", ADAPTER_HELP, collect)
    .option("--use <name>", USE_HELP)
    .requiredOption("--ids <ids>", "token ids, e.g. 1,2,3")
    .option("--json", 'print {"logits":[[...],...]}')
    .action(async (f: AdapterFlags & { model: string; ids: string; json?: boolean }) => {
      const ids = parseIds("--ids", f.ids);
      const { lm, feeds } = await loadWithAdapters(f.model, f);
      checkIdsInVocab("--ids", ids, lm.config.vocabSize);
      const rows = await lm.logits(ids, feeds);
      if (f.json) process.stdout.write(`${JSON.stringify({ logits: rows.map((r) => Array.from(r)) })}\n`);
      else for (const r of rows) process.stdout.write(`${Array.from(r, (v) => v.toFixed(5)).join(" ")}\n`);
      await lm.release();
    });
}
