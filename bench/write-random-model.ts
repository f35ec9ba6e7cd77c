/**
 * Writes one of the benchmark's random-weight checkpoints, in its own process so that the parent
 * benchmark does not keep the gigabytes the writer allocated (a 1B model's float32 weights stayed in
 * bench:train's heap and left the measured runs 7 GB less memory):
 *
 *   node dist/bench/write-random-model.js SHAPE DIR [bfloat16]
 */
import { writeRandomModel } from "../src/models/random-init.js";
import * as shapes from "./shapes.js";

const [shape, dir, dtype] = process.argv.slice(2);
const json = (shapes as Record<string, Record<string, unknown>>)[shape ?? ""];
if (!json || !dir)
  throw new Error(
    `usage: write-random-model.js SHAPE DIR [bfloat16] (SHAPE: ${Object.keys(shapes).join(", ")})`,
  );
writeRandomModel(dir, json, { seed: 1, ...(dtype === "bfloat16" ? { dtype: "bfloat16" as const } : {}) });
