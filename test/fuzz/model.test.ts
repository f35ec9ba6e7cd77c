/** Fuzzing of Hugging Face model folders (see model.targets.ts and harness.ts). */
import { fuzzTests } from "./harness.js";
import { targets } from "./model.targets.js";

fuzzTests(targets);
