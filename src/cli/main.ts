#!/usr/bin/env node
/** The `lora-ts` binary: see program.ts. */
import { main } from "./program.js";

// Output piped into a reader that stops early (`| head`) is not an error worth a stack trace.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

process.exitCode = await main(process.argv.slice(2));
