/**
 * The sweep's side of `--queue`: each run not finished already becomes a BullMQ job (its train
 * arguments), `lora-ts worker`s anywhere run them, and the sweep writes each run's returned files into
 * OUT/runs/NAME, so that OUT, its markers and resume are those of a local sweep. Outcomes come back in
 * job order, as runSweep's do.
 *
 * A job's id is a hash of OUT, the run's name and its arguments: the same command again finds the jobs
 * it left (a run still active, or finished while the sweep was stopped) instead of queueing them twice.
 * The sweep removes a job once it has written its result. Retries: a training error comes back as a
 * failed run (the child's last stderr line and its log) and is not retried (training is seeded; it
 * would fail again). A worker that dies mid-run leaves its job stalled; another worker takes it up
 * (sweep-queue-url.ts, stallSettings). A worker-side error (its disk, say) is retried once elsewhere
 * (attempts 2).
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { Job, Queue } from "bullmq";
import { LoraTsError } from "../util/errors.js";
import { connection, probeRedis } from "./sweep-queue-connect.js";
import { asPayload, unpackRun } from "./sweep-queue-files.js";
import type { QueueTarget } from "./sweep-queue-url.js";
import { checkFinished, type RunJob, type RunOutcome, readMarker, runDir } from "./sweep-runner.js";

/** What a job carries: everything a worker needs to run it. */
export interface QueueJobData {
  name: string;
  args: string[];
  extra: string[];
  /** The sweep's OUT, for people reading the queue. */
  out: string;
}

export interface QueueProgress {
  waiting: number;
  active: number;
  done: number;
  failed: number;
}

export interface RunOnQueueOptions {
  out: string;
  queue: QueueTarget;
  onEnd?(k: number, n: number, outcome: RunOutcome): void;
  /** A progress line: when the counts change, and every `everyMs` even if they do not. */
  onProgress?(p: QueueProgress): void;
  everyMs?: number;
  pollMs?: number;
}

export function jobId(out: string, job: RunJob): string {
  const h = createHash("sha256")
    .update(JSON.stringify([resolve(out), job.name, job.args]))
    .digest("hex");
  return `${job.name}.${h.slice(0, 16)}`;
}

const WAITING = new Set(["waiting", "wait", "delayed", "prioritized", "waiting-children"]);

export async function runSweepOnQueue(
  jobs: readonly RunJob[],
  o: RunOnQueueOptions,
): Promise<RunOutcome[] & { interrupted?: NodeJS.Signals }> {
  const finished = checkFinished(o.out, jobs);
  const outcomes: RunOutcome[] & { interrupted?: NodeJS.Signals } = new Array(jobs.length);
  const n = jobs.length;
  for (let k = 0; k < n; k++) {
    const job = jobs[k]!;
    if (!finished.has(job.name)) continue;
    outcomes[k] = {
      name: job.name,
      status: "skipped",
      seconds: readMarker(runDir(o.out, job.name))?.seconds ?? null,
    };
    o.onEnd?.(k + 1, n, outcomes[k]!);
  }
  const pending = new Map<number, string>();
  for (let k = 0; k < n; k++) if (outcomes[k] === undefined) pending.set(k, jobId(o.out, jobs[k]!));
  if (pending.size === 0) return outcomes;

  await probeRedis(o.queue);
  const queue = new Queue<QueueJobData>(o.queue.name, { connection: connection(o.queue) });
  let lost: Error | undefined;
  queue.on("error", (e: Error) => {
    lost = e;
  });
  let stop: NodeJS.Signals | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    stop ??= sig;
    wake?.();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    for (const [k, id] of pending) {
      const state = await queue.getJobState(id);
      // A failed job of an earlier invocation is trained again, as a local sweep retrains a failed run.
      if (state === "failed") await queue.remove(id);
      if (state === "unknown" || state === "failed") {
        const job = jobs[k]!;
        await queue.add(
          "run",
          { name: job.name, args: job.args, extra: job.extra ?? [], out: resolve(o.out) },
          {
            jobId: id,
            attempts: 2,
            backoff: { type: "fixed", delay: 1000 },
            removeOnComplete: false,
            removeOnFail: false,
          },
        );
      }
    }
    let done = 0;
    let failed = 0;
    let shown = "";
    let shownAt = 0;
    while (pending.size > 0 && stop === undefined) {
      let waiting = 0;
      let active = 0;
      for (const [k, id] of [...pending]) {
        const state = await queue.getJobState(id);
        if (WAITING.has(state)) waiting++;
        else if (state === "active") active++;
        else {
          const outcome = await collect(queue, o.out, jobs[k]!.name, id, state);
          pending.delete(k);
          outcomes[k] = outcome;
          if (outcome.status === "done") done++;
          else failed++;
          o.onEnd?.(k + 1, n, outcome);
        }
      }
      const line = JSON.stringify([waiting, active, done, failed]);
      if (line !== shown || performance.now() - shownAt >= (o.everyMs ?? 30_000)) {
        o.onProgress?.({ waiting, active, done, failed });
        shown = line;
        shownAt = performance.now();
      }
      if (pending.size > 0 && stop === undefined)
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, o.pollMs ?? 500);
        });
    }
    if (stop !== undefined) {
      // Waiting jobs leave the queue ("not run"); running ones finish on their workers, and the same
      // command collects them later ("interrupted" here).
      for (const [k, id] of pending) {
        const state = await queue.getJobState(id);
        const waiting = WAITING.has(state) && (await queue.remove(id)) === 1;
        outcomes[k] = { name: jobs[k]!.name, status: waiting ? "not run" : "interrupted", seconds: null };
      }
      outcomes.interrupted = stop;
    }
  } catch (e) {
    if (e instanceof LoraTsError) throw e;
    throw new LoraTsError(`--queue ${o.queue.shown}: ${(lost ?? (e as Error)).message.split("\n")[0]}`);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await queue.close().catch(() => undefined);
  }
  return outcomes;
}

/** A job that left the active state: its files written into OUT, the job removed, the outcome. */
async function collect(
  queue: Queue,
  out: string,
  name: string,
  id: string,
  state: string,
): Promise<RunOutcome> {
  const job = state === "unknown" ? undefined : await Job.fromId(queue, id);
  if (job === undefined)
    return { name, status: "failed", seconds: null, error: "the job left the queue unfinished" };
  let outcome: RunOutcome;
  if (state === "completed") {
    const p = asPayload(job.returnvalue);
    if (p === null)
      outcome = { name, status: "failed", seconds: null, error: "the worker sent no run files" };
    else {
      await unpackRun(out, name, p);
      outcome =
        p.status === "done"
          ? { name, status: "done", seconds: p.seconds }
          : { name, status: "failed", seconds: p.seconds, error: p.error ?? "failed" };
    }
  } else {
    outcome = { name, status: "failed", seconds: null, error: `on the queue: ${job.failedReason || state}` };
  }
  await job.remove().catch(() => undefined);
  return outcome;
}
