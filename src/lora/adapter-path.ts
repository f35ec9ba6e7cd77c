/**
 * What `--adapter` may name: a PEFT adapter folder (used as is), a hub id `org/name[@revision]`,
 * which becomes its snapshot folder in the Hugging Face cache (adapter_config.json and
 * adapter_model.safetensors only; see io/hub.ts), or a GGUF LoRA adapter file, which needs the base
 * model (`modelDir`) and becomes a PEFT folder in the cache (see gguf-adapter.ts). A local path that
 * exists always wins.
 */

import { isGgufFile } from "../io/gguf.js";
import { hubIdFor, hubSnapshot } from "../io/hub.js";
import { ggufAdapterFolder } from "./gguf-adapter.js";

export interface AdapterPathOptions {
  /** The base model's folder (already resolved): needed to turn a GGUF adapter into PEFT. */
  modelDir?: string;
}

export async function resolveAdapterPath(p: string, opts: AdapterPathOptions = {}): Promise<string> {
  if (isGgufFile(p)) return ggufAdapterFolder(p, opts.modelDir);
  return hubIdFor(p) ? hubSnapshot(p, { kind: "adapter" }) : p;
}
