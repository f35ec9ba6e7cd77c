/**
 * Connecting to a sweep's Redis: a probe that fails within seconds when the URL points nowhere (one line
 * naming --queue), then the connection options the Queue and Worker keep. Loads bullmq; only the queue
 * paths import this file, so a local sweep never loads it.
 */
import { Queue } from "bullmq";
import { LoraTsError } from "../util/errors.js";
import { type QueueTarget, redisOptions } from "./sweep-queue-url.js";

const PROBE_MS = 5000;

/** Resolves when Redis answers; else a one-line error naming --queue, within about PROBE_MS. */
export async function probeRedis(t: QueueTarget): Promise<void> {
  const q = new Queue(t.name, { connection: redisOptions(t, true) as never });
  let last: Error | undefined;
  q.on("error", (e: Error) => {
    last = e;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      q.waitUntilReady(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${PROBE_MS / 1000} s`)), PROBE_MS);
      }),
    ]);
  } catch (e) {
    const why = (last ?? (e as Error)).message.split("\n")[0];
    throw new LoraTsError(`--queue ${t.shown}: cannot reach Redis (${why})`);
  } finally {
    clearTimeout(timer);
    await q.close().catch(() => undefined);
  }
}

/** The connection option of the Queue and Worker, after a successful probe. */
export function connection(t: QueueTarget): never {
  return redisOptions(t, false) as never;
}
