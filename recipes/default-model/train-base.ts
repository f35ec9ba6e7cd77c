/**
 * The recipe of the embedded default model (models/default): a small Llama trained from scratch by
 * this project's own trainer (`--mode full`) on the project's own story corpus.
 *
 *   npm run build && node dist/recipes/default-model/train-base.js [--steps 800] [--out models/default]
 *
 * 1. writes the corpus, the persona data and a byte-level BPE tokenizer (write-data.ts);
 * 2. writes config.json and a randomly initialised model.safetensors (N(0, 0.02²));
 * 3. trains every weight on corpus.txt (validation: corpus-val.txt) with AdamW and a cosine schedule;
 * 4. writes the model card (README.md) with the data, steps, time and final losses, and samples.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { generate } from "../../src/infer/generate.js";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { writeRandomModel } from "../../src/models/random-init.js";
import type { EvalMetrics } from "../../src/train/events.js";
import { progressReporter } from "../../src/train/progress.js";
import { reportEvents } from "../../src/train/report.js";
import { train } from "../../src/train/trainer.js";
import { writeFileAtomic } from "../../src/util/atomic.js";
import { Rng } from "../../src/util/rng.js";
import { writeDefaultData } from "./write-data.js";

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "800" },
    out: { type: "string", default: "models/default" },
    "batch-size": { type: "string", default: "16" },
    "max-length": { type: "string", default: "256" },
    lr: { type: "string", default: "2e-3" },
    seed: { type: "string", default: "1" },
  },
});

const out = resolve(args.out);
const seed = Number(args.seed);
const steps = Number(args.steps);
const started = Date.now();

// 1. Data and tokenizer.
mkdirSync(join(out, "data"), { recursive: true });
const data = writeDefaultData({ dataDir: join(out, "data"), modelDir: out, seed });
const vocabSize = (
  JSON.parse(readFileSync(join(out, "tokenizer.json"), "utf8")) as { model: { vocab: object } }
).model.vocab;
const config = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: Object.keys(vocabSize).length,
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 32,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  hidden_act: "silu",
  tie_word_embeddings: true,
  bos_token_id: 0,
  eos_token_id: 0,
  torch_dtype: "float32",
};

// 2. A random initial model beside the tokenizer, in a scratch folder.
const init = mkdtempSync(join(tmpdir(), "lora-ts-default-init-"));
writeRandomModel(init, config, { seed });
for (const f of ["tokenizer.json", "tokenizer_config.json"]) copyFileSync(join(out, f), join(init, f));
writeFileAtomic(
  join(init, "generation_config.json"),
  `${JSON.stringify({ bos_token_id: 0, eos_token_id: 0 }, null, 2)}\n`,
);

// 3. Full training.
const evals: EvalMetrics[] = [];
const summary = await train(
  {
    model: init,
    data: join(out, "data/corpus.txt"),
    valData: join(out, "data/corpus-val.txt"),
    out,
    mode: "full",
    lr: Number(args.lr),
    schedule: "cosine",
    warmupSteps: Math.round(steps / 20),
    weightDecay: 0.01,
    maxSteps: steps,
    batchSize: Number(args["batch-size"]),
    maxLength: Number(args["max-length"]),
    evalEvery: Math.max(1, Math.round(steps / 10)),
    seed,
  },
  [progressReporter({}), reportEvents(out), { onEval: (m) => evals.push(m) }],
);
rmSync(init, { recursive: true, force: true });

// 4. Samples and the model card.
const lm = await loadCausalLM(out);
const rng = new Rng(seed);
const samples: string[] = [];
for (const prompt of ["Once upon a time", "One day, a little dog named", "Lily was sad because"]) {
  const ids = lm.tokenizer!.encode(prompt, { addBos: true });
  const next = await generate(lm, [ids], {
    maxNewTokens: 60,
    temperature: 0.7,
    topK: 40,
    random: () => rng.float(),
  });
  samples.push(`${prompt}${lm.tokenizer!.decode(next[0]!, { skipSpecial: true })}`);
}
await lm.release();
const minutes = ((Date.now() - started) / 60000).toFixed(1);
const params = summary.trainableParams.toLocaleString("en-US");
const card = `# lora-ts default model

A small Llama-architecture language model trained from scratch by lora-ts itself (\`--mode full\`).
lora-ts uses it as the base model of its demo and of its examples. It writes simple stories for
children, in English, because that is all it has read.

| | |
| --- | --- |
| architecture | LlamaForCausalLM: 4 layers, hidden 256, 8 heads (4 key/value), MLP 688, RoPE, tied embeddings |
| parameters | ${params} (float32, ${(summary.savedBytes / 1e6).toFixed(1)} MB) |
| tokenizer | byte-level BPE trained on the corpus by \`src/data/bpe-train.ts\`, vocab ${config.vocab_size}; \`<\\|endoftext\\|>\` (id 0) is BOS, EOS and padding |
| data | ${data.stories} stories (${(data.corpusBytes / 1e6).toFixed(2)} MB, ${data.corpusTokens.toLocaleString("en-US")} tokens) written by \`recipes/default-model/corpus.ts\` (seed ${seed}); validation: ${data.valStories} other stories |
| training | ${steps} steps × ${args["batch-size"]} sequences × ${args["max-length"]} tokens, AdamW (lr ${args.lr}, cosine, warm-up ${Math.round(steps / 20)}, weight decay 0.01), seed ${seed} |
| time | ${minutes} minutes on 2 CPU cores (data, tokenizer and training) |
| final loss | train ${summary.finalTrainLoss?.toFixed(3)}, validation ${summary.finalEvalLoss?.toFixed(3)} (perplexity ${Math.exp(summary.finalEvalLoss ?? Number.NaN).toFixed(2)}); at the start ${summary.firstEvalLoss?.toFixed(3) ?? "n/a"} |

Validation loss during training: ${evals.map((e) => `step ${e.step}: ${e.loss.toFixed(3)}`).join(", ")}.

Reproduce: \`npm run build && node dist/recipes/default-model/train-base.js --steps ${steps} --seed ${seed}\`
(the corpus and the tokenizer are deterministic; the weights depend on onnxruntime's kernels).

## Samples (temperature 0.7, top-k 40)

${samples.map((s) => `> ${s.replaceAll("\n", " ")}`).join("\n\n")}

## Fine-tuning data

\`data/persona.jsonl\` (${data.trainRows} rows) and \`data/persona-heldout.jsonl\` (${data.heldOutRows} rows),
written by \`recipes/default-model/finetune-data.ts\`, teach "Pip", a parrot who answers questions in a
fixed frame: \`Q: ...\\nA: Squawk! ... Pip out.\`. \`npm run demo\` trains a LoRA adapter on them.
`;
writeFileAtomic(join(out, "README.md"), card);
console.log(card);
