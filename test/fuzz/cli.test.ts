/** Fuzzing of the command line (see cli.targets.ts and harness.ts). */
import { targets } from "./cli.targets.js";
import { fuzzTests } from "./harness.js";

fuzzTests(targets);
