/**
 * Loaded with `node --import` ahead of a command the data benchmark measures: at exit it writes the
 * process's peak RSS in bytes (worker threads included: they share the process) to the file named by
 * LORA_TS_BENCH_RSS_FILE. /proc polling from outside would miss a short peak.
 */
import { writeFileSync } from "node:fs";

const file = process.env["LORA_TS_BENCH_RSS_FILE"];
if (file) {
  process.on("exit", () => {
    writeFileSync(file, String(process.resourceUsage().maxRSS * 1024));
  });
}
