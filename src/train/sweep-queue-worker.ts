/**
 * `lora-ts worker`'s loop: takes sweep runs off the queue, runs each exactly as the local runner does
 * (runOne: a `lora-ts train` child process) in a temporary folder, and returns the run's files
 * (sweep-queue-files.ts) as the job's result. A failed training run is a result too (status failed,
 * with its log), not a job error: it is not retried. Ctrl-C / SIGTERM: the running children are
 * stopped, their jobs go back to the queue for another worker, and the worker exits.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Job, WaitingError, Worker } from "bullmq";
import type { QueueJobData } from "./sweep-queue.js";
import { connection, probeRedis } from "./sweep-queue-connect.js";
import { packRun, type RunPayload, safeRelative } from "./sweep-queue-files.js";
import type { QueueTarget, StallSettings } from "./sweep-queue-url.js";
import { runDir, runOne } from "./sweep-runner.js";

export interface WorkerOptions {
  queue: QueueTarget;
  /** The compiled CLI (src/cli/main.js). */
  bin: string;
  concurrency: number;
  stall: StallSettings;
  log(line: string): void;
}

/** Runs until SIGINT / SIGTERM; resolves with that signal once the worker is closed. */
export async function runWorker(o: WorkerOptions): Promise<NodeJS.Signals> {
  await probeRedis(o.queue);
  const live = new Set<ChildProcess>();
  let stopping = false;
  const processor = async (job: Job<QueueJobData>, token?: string): Promise<RunPayload> => {
    const d = job.data;
    if (
      typeof d?.name !== "string" ||
      !safeRelative(d.name) ||
      d.name.includes("/") ||
      !Array.isArray(d.args)
    )
      throw new Error(`job ${job.id}: not a lora-ts sweep run`);
    const tmp = mkdtempSync(join(tmpdir(), "lora-ts-worker-"));
    try {
      o.log(`${d.name}: started (job ${job.id}, attempt ${job.attemptsStarted})`);
      const outcome = await runOne(
        o.bin,
        tmp,
        { name: d.name, args: d.args, extra: d.extra },
        live,
        () => stopping,
      );
      if (outcome.status === "interrupted") {
        // Back to the queue for another worker, without spending an attempt.
        await job.moveToWait(token);
        o.log(`${d.name}: stopped, back on the queue`);
        throw new WaitingError();
      }
      const payload = packRun(runDir(tmp, d.name), join(tmp, "logs", `${d.name}.log`), outcome);
      o.log(
        outcome.status === "done"
          ? `${d.name}: done in ${outcome.seconds!.toFixed(1)} s`
          : `${d.name}: failed: ${outcome.error}`,
      );
      return payload;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  };
  const worker = new Worker<QueueJobData, RunPayload>(o.queue.name, processor, {
    connection: connection(o.queue),
    concurrency: o.concurrency,
    lockDuration: o.stall.lockMs,
    stalledInterval: o.stall.stalledMs,
    maxStalledCount: o.stall.maxStalled,
    autorun: false,
  });
  worker.on("error", (e: Error) => o.log(`queue error: ${e.message.split("\n")[0]}`));
  worker.on("failed", (job, e) => {
    if (job !== undefined) o.log(`${job.data.name}: job error: ${e.message.split("\n")[0]}`);
  });
  const signal = new Promise<NodeJS.Signals>((resolveSignal) => {
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      for (const c of live) c.kill(sig);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolveSignal(sig);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  void worker.run();
  await worker.waitUntilReady();
  o.log(
    `worker: taking runs from queue ${o.queue.name} at ${o.queue.shown}, ${o.concurrency} at a time (lock ${o.stall.lockMs} ms, stalled check every ${o.stall.stalledMs} ms)`,
  );
  const sig = await signal;
  await worker.close();
  return sig;
}
