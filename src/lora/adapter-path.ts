/**
 * What `--adapter` may name: a PEFT adapter folder (used as is) or a hub id `org/name[@revision]`,
 * which becomes its snapshot folder in the Hugging Face cache (adapter_config.json and
 * adapter_model.safetensors only; see io/hub.ts). A local path that exists always wins.
 */
import { hubIdFor, hubSnapshot } from "../io/hub.js";

export async function resolveAdapterPath(p: string): Promise<string> {
  return hubIdFor(p) ? hubSnapshot(p, { kind: "adapter" }) : p;
}
