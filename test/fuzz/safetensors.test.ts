/** Fuzzing of safetensors files (see safetensors.targets.ts and harness.ts). */
import { fuzzTests } from "./harness.js";
import { targets } from "./safetensors.targets.js";

fuzzTests(targets);
