/** Fuzzing of adapters, adapter_config.json and the --lora spec (see lora.targets.ts and harness.ts). */
import { fuzzTests } from "./harness.js";
import { targets } from "./lora.targets.js";

fuzzTests(targets);
