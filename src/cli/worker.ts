/**
 * `lora-ts worker --queue redis://HOST:PORT [--queue-name NAME] [--concurrency 1]`: takes the runs of
 * `lora-ts sweep --queue ...` off a BullMQ queue and trains each as a `lora-ts train` child process on
 * this machine, sending the run's files back through the queue. The loop is
 * src/train/sweep-queue-worker.ts; bullmq is loaded only when this command runs.
 */
import type { Command } from "commander";
import { LoraTsError } from "../util/errors.js";
import { parseNumber } from "./parse.js";
import { CLI_BIN } from "./sweep.js";

export function registerWorker(program: Command): void {
  program
    .command("worker")
    .description("train the runs of `lora-ts sweep --queue` on this machine, taken from the Redis queue")
    .option("--queue <url>", "the sweep's Redis: redis://HOST:PORT[/DB]")
    .option("--queue-name <name>", "the queue the sweep puts its runs on (default lora-ts-sweep)")
    .option("--concurrency <n>", "runs at once on this machine, each a child process (default 1)")
    .action(async (flags: { queue?: string; queueName?: string; concurrency?: string }) => {
      if (flags.queue === undefined) throw new LoraTsError("worker: --queue redis://HOST:PORT is required");
      const { parseQueue, stallSettings } = await import("../train/sweep-queue-url.js");
      const queue = parseQueue(flags.queue, flags.queueName);
      const concurrency =
        flags.concurrency === undefined
          ? 1
          : parseNumber("--concurrency", flags.concurrency, { integer: true, min: 1 });
      const stall = stallSettings();
      const { runWorker } = await import("../train/sweep-queue-worker.js");
      const sig = await runWorker({
        queue,
        bin: CLI_BIN,
        concurrency,
        stall,
        log: (line) => process.stdout.write(`${line}\n`),
      });
      process.stdout.write(`worker: stopped by ${sig}\n`);
    });
}
