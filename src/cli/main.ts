#!/usr/bin/env node
/** The `lora-ts` binary: see program.ts. */
import { main } from "./program.js";

process.exitCode = await main(process.argv.slice(2));
