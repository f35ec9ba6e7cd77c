/** Fuzzing of data set files (see data.targets.ts and harness.ts). */
import { targets } from "./data.targets.js";
import { fuzzTests } from "./harness.js";

fuzzTests(targets);
