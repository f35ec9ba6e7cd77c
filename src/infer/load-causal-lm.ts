/** A causal LM loaded from a model folder, a .gguf file or a hub id, with adapters from their folders. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readTokenizer } from "../data/tokenizer-files.js";
import { loadAdapter } from "../lora/adapter-files.js";
import { resolveAdapterPath } from "../lora/adapter-path.js";
import { resolveModelPath } from "../models/model-path.js";
import { openModelDir } from "../models/open-model.js";
import { CausalLM, type LoadOptions } from "./causal-lm.js";

/** `dir`: a Hugging Face model directory, or a .gguf file (converted once into a cache folder). */
export async function loadCausalLM(dir: string, opts: LoadOptions = {}): Promise<CausalLM> {
  dir = await resolveModelPath(dir);
  const tokenizer = existsSync(join(dir, "tokenizer.json")) ? readTokenizer(dir) : null;
  const model = openModelDir(dir);
  const adapters = [];
  try {
    for (const a of opts.adapters ?? [])
      adapters.push({
        name: a.name,
        adapter: loadAdapter(await resolveAdapterPath(a.dir, { modelDir: dir })),
      });
  } catch (e) {
    model.weights.close();
    throw e;
  }
  return CausalLM.fromModel(model, tokenizer, {
    adapters,
    wrapContext: opts.wrapContext,
    session: opts.session,
  });
}
