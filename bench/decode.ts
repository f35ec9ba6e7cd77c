/**
 * Decode benchmark: tokens/s of KV-cache generation (batch 1, greedy) for stories260K (from ../shared,
 * when present) and a random-weight GPT-2-small (124M) checkpoint written with the project's own
 * writer. Prints one table; see bench/RESULTS.md for recorded figures.
 *
 *   npm run bench:decode [-- --tokens 128]
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { generate } from "../src/infer/generate.js";
import { loadCausalLM } from "../src/infer/load-causal-lm.js";
import { convertLlama2c } from "../src/models/convert-llama2c.js";
import { writeRandomModel } from "../src/models/random-init.js";
import { machineLine } from "./machine.js";
import { GPT2_SMALL } from "./shapes.js";

const argTokens = process.argv.indexOf("--tokens");
const NEW_TOKENS = argTokens > 0 ? Number(process.argv[argTokens + 1]) : 128;
const shared = process.env["LORA_TS_SHARED"] ?? resolve(process.cwd(), "../shared");

interface Row {
  model: string;
  params: string;
  buildS: number;
  prefillTokS: number;
  decodeTokS: number;
}

async function measure(name: string, params: string, dir: string, prompt: number[]): Promise<Row> {
  const t0 = performance.now();
  const lm = await loadCausalLM(dir);
  const buildS = (performance.now() - t0) / 1000;
  await generate(lm, [prompt], { maxNewTokens: 4, eosIds: [] }); // warm-up
  // Prefill: one forward over the prompt.
  const p0 = performance.now();
  await lm.step([prompt], lm.emptyCache(1));
  const prefillTokS = prompt.length / ((performance.now() - p0) / 1000);
  // Decode: median of 3 runs of NEW_TOKENS steps (the prefill of a 1-token prompt is negligible).
  const rates: number[] = [];
  for (let i = 0; i < 3; i++) {
    const d0 = performance.now();
    await generate(lm, [[prompt[0]!]], { maxNewTokens: NEW_TOKENS, eosIds: [] });
    rates.push(NEW_TOKENS / ((performance.now() - d0) / 1000));
  }
  rates.sort((a, b) => a - b);
  await lm.release();
  return { model: name, params, buildS, prefillTokS, decodeTokS: rates[1]! };
}

const rows: Row[] = [];
const work = mkdtempSync(join(tmpdir(), "lora-ts-bench-"));
try {
  const stories = join(shared, "models/stories260K");
  if (existsSync(join(stories, "stories260K.bin"))) {
    const dir = join(work, "stories260K");
    await convertLlama2c({
      model: join(stories, "stories260K.bin"),
      tokenizer: join(stories, "tok512.bin"),
      out: dir,
    });
    rows.push(
      await measure(
        "stories260K",
        "0.26M",
        dir,
        Array.from({ length: 128 }, (_, i) => (i * 7) % 500),
      ),
    );
  } else {
    console.log(`(${stories} absent: stories260K skipped)`);
  }
  const gpt2 = join(work, "gpt2-small");
  mkdirSync(gpt2);
  writeRandomModel(gpt2, GPT2_SMALL, { seed: 1 });
  rows.push(
    await measure(
      "gpt2-small (random)",
      "124M",
      gpt2,
      Array.from({ length: 128 }, (_, i) => (i * 389) % 50257),
    ),
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log(`\ndecode, batch 1, greedy, ${NEW_TOKENS} new tokens; ${machineLine()}`);
console.log("| model | params | session build s | prefill 128 tok/s | decode tok/s |");
console.log("| --- | --- | --- | --- | --- |");
for (const r of rows) {
  console.log(
    `| ${r.model} | ${r.params} | ${r.buildS.toFixed(2)} | ${r.prefillTokS.toFixed(0)} | ${r.decodeTokS.toFixed(1)} |`,
  );
}
