/** Adapters on disk: a PEFT adapter folder read, written file by file, or written whole (adapter.ts is the format). */
import { randomBytes } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileSource, writeSafetensors } from "../io/safetensors.js";
import type { ModuleInfo } from "../models/module.js";
import { writeFileAtomic } from "../util/atomic.js";
import { FileFormatError, LoraTsError } from "../util/errors.js";
import {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  type Adapter,
  adapterConfigText,
  adapterTensorsToWrite,
  parseAdapter,
  type SaveDtype,
} from "./adapter.js";

/**
 * Reads `dir`/adapter_config.json and `dir`/adapter_model.safetensors. With `modules`, the tensors are
 * also checked against the model (validateAdapter).
 */
export function loadAdapter(
  dir: string,
  modules?: readonly ModuleInfo[],
  opts: { modelType?: string } = {},
): Adapter {
  const cfgPath = join(dir, ADAPTER_CONFIG_NAME);
  const wPath = join(dir, ADAPTER_WEIGHTS_NAME);
  if (!existsSync(cfgPath)) {
    throw new LoraTsError(`${dir}: not an adapter directory (no ${ADAPTER_CONFIG_NAME})`);
  }
  if (!existsSync(wPath)) {
    const bin = existsSync(join(dir, "adapter_model.bin"));
    throw new LoraTsError(
      `${dir}: no ${ADAPTER_WEIGHTS_NAME}` +
        (bin
          ? " (adapter_model.bin is a PyTorch pickle, which is not read: re-save it with safetensors)"
          : ""),
    );
  }
  let text: string;
  try {
    text = readFileSync(cfgPath, "utf8");
  } catch (e) {
    throw new FileFormatError(cfgPath, `cannot read: ${(e as Error).message.split("\n")[0]}`);
  }
  return parseAdapter(text, cfgPath, fileSource(wPath), dir, modules, opts);
}

/**
 * Writes the adapter to `dir` (adapter_config.json + adapter_model.safetensors). The files are
 * assembled in a temporary sibling directory which is then renamed to `dir`; an existing `dir` is
 * moved aside first and removed only once the new one is in place. Files in the old `dir` other
 * than the adapter's own (a README, training state) are carried over.
 * dtype: "float32" (default, as PEFT), "same" (each tensor in the dtype it was loaded from),
 * "float16" or "bfloat16".
 */
/**
 * Writes adapter_config.json and adapter_model.safetensors into an existing directory, each file
 * atomically (temp + rename). saveAdapter assembles a whole directory; the trainer writes its final
 * adapter beside its checkpoints with this.
 */
export function writeAdapterFiles(dir: string, adapter: Adapter, opts: { dtype?: SaveDtype } = {}): void {
  const list = adapterTensorsToWrite(adapter, opts.dtype ?? "float32", dir);
  writeSafetensors(join(dir, ADAPTER_WEIGHTS_NAME), list, { format: "pt" });
  writeFileAtomic(join(dir, ADAPTER_CONFIG_NAME), adapterConfigText(adapter));
}

export function saveAdapter(dir: string, adapter: Adapter, opts: { dtype?: SaveDtype } = {}): void {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new LoraTsError(`${dir}: exists and is not a directory`);
  }
  const tmp = join(parent, `.${basename(dir)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  mkdirSync(tmp);
  try {
    if (existsSync(dir)) {
      const own = new Set([ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, "adapter_model.bin"]);
      for (const name of readdirSync(dir)) {
        if (!own.has(name)) cpSync(join(dir, name), join(tmp, name), { recursive: true });
      }
    }
    writeAdapterFiles(tmp, adapter, opts);
    if (existsSync(dir)) {
      const old = join(parent, `.${basename(dir)}.${process.pid}.${randomBytes(4).toString("hex")}.old`);
      renameSync(dir, old);
      try {
        renameSync(tmp, dir);
      } catch (e) {
        renameSync(old, dir);
        throw e;
      }
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, dir);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (e instanceof LoraTsError) throw e;
    throw new LoraTsError(`${dir}: cannot write adapter (${(e as Error).message.split("\n")[0]})`);
  }
}
