/**
 * Where run-time adapter loading may read from, and what an adapter may be called.
 *
 * - Names match ADAPTER_NAME (they become model names in requests and metric labels).
 * - `lora_path` (absolute, or relative to the root) is first checked by its text: a path whose
 *   lexical form leaves the root is refused before the file system is asked anything about it.
 *   Then it is resolved with fs.realpath (symlinks followed) and must still lie inside the root,
 *   itself realpath'd when the server starts; containment is decided with path.relative, so
 *   /srv/adapters-evil is not inside /srv/adapters.
 * - Without `--adapter-root`, run-time loading is off (403).
 */
import { realpath, stat } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { ApiError } from "./errors.js";

export const ADAPTER_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export function checkAdapterName(name: string, param = "lora_name"): void {
  if (!ADAPTER_NAME.test(name)) {
    throw new ApiError(
      400,
      `${param}: ${JSON.stringify(name.slice(0, 80))} is not a valid adapter name (1 to 64 of A-Z a-z 0-9 . _ -)`,
      param,
      "invalid_adapter_name",
    );
  }
}

/** True when `p` is `root` or below it (both absolute and normalized). */
export function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

export class AdapterRoot {
  /** `root` must already be a realpath (see open). */
  private constructor(readonly root: string) {}

  /** The root as the server uses it: its realpath, which must be a directory. */
  static async open(dir: string): Promise<AdapterRoot> {
    const root = await realpath(dir);
    if (!(await stat(root)).isDirectory()) throw new Error(`${dir} is not a directory`);
    return new AdapterRoot(root);
  }

  /** The real path of an adapter folder inside the root, or a 400/403 ApiError. */
  async resolve(loraPath: string): Promise<string> {
    const outside = () =>
      new ApiError(403, "lora_path: the path is outside --adapter-root", "lora_path", "path_not_allowed");
    if (loraPath.includes("\0")) throw new ApiError(400, "lora_path: contains a NUL byte", "lora_path");
    const lexical = resolve(this.root, loraPath);
    if (!isInside(this.root, lexical)) throw outside();
    let real: string;
    try {
      real = await realpath(lexical);
    } catch {
      throw new ApiError(400, "lora_path: no such file or directory under --adapter-root", "lora_path");
    }
    if (!isInside(this.root, real)) throw outside();
    return real;
  }
}

export const loadingOff = (): ApiError =>
  new ApiError(
    403,
    "run-time adapter loading is off: start the server with --adapter-root DIR to allow it",
    null,
    "loading_disabled",
  );
