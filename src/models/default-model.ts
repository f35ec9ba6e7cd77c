/**
 * The embedded default model: the repository's (and the npm package's) `models/default` folder, a
 * 3.4M-parameter Llama trained by `recipes/default-model/`. A path only; it is loaded like any other
 * Hugging Face folder.
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Absolute path of `models/default` (this file runs from dist/src/models/). */
export const DEFAULT_MODEL_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../../models/default");
