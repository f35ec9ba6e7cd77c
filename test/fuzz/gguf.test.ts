/** Fuzzing of GGUF and llama2.c files (see gguf.targets.ts and harness.ts). */
import { targets } from "./gguf.targets.js";
import { fuzzTests } from "./harness.js";

fuzzTests(targets);
