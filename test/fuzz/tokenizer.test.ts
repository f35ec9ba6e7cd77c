/** Fuzzing of tokenizer folders and chat templates (see tokenizer.targets.ts and harness.ts). */
import { fuzzTests } from "./harness.js";
import { targets } from "./tokenizer.targets.js";

fuzzTests(targets);
