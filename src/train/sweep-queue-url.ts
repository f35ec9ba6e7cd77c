/**
 * Where a sweep's queue lives: `--queue redis://[USER:PASSWORD@]HOST:PORT[/DB]` and `--queue-name`
 * (default `lora-ts-sweep`, the one name sweep and workers agree on unless both are given another).
 * Also the stalled-job timings of the workers. Nothing here loads bullmq.
 */
import { LoraTsError } from "../util/errors.js";

export const DEFAULT_QUEUE_NAME = "lora-ts-sweep";

export interface QueueTarget {
  /** The URL as given, password hidden: for messages. */
  shown: string;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
  name: string;
}

/** `--queue` and `--queue-name` → a target; a bad value is one line naming the flag. */
export function parseQueue(url: string, name: string = DEFAULT_QUEUE_NAME): QueueTarget {
  let u: URL;
  const bad = (why: string) =>
    new LoraTsError(
      `--queue ${JSON.stringify(url)}: ${why}; give redis://HOST:PORT (e.g. redis://127.0.0.1:6379)`,
    );
  try {
    u = new URL(url);
  } catch {
    throw bad("not a URL");
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:")
    throw bad(`${u.protocol} is not redis: or rediss:`);
  if (u.hostname === "") throw bad("no host");
  const port = u.port === "" ? 6379 : Number(u.port);
  const path = u.pathname.replace(/^\//, "");
  if (path !== "" && !/^\d+$/.test(path)) throw bad(`the path "/${path}" is not a database number`);
  if (u.search !== "" || u.hash !== "") throw bad("no query or fragment is taken");
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name))
    throw new LoraTsError(`--queue-name ${JSON.stringify(name)}: letters, digits, '.', '_' and '-' only`);
  const shown = `${u.protocol}//${u.hostname.includes(":") ? `[${u.hostname}]` : u.hostname}:${port}${path === "" ? "" : `/${path}`}`;
  return {
    shown,
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port,
    db: path === "" ? 0 : Number(path),
    ...(u.username !== "" ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== "" ? { password: decodeURIComponent(u.password) } : {}),
    tls: u.protocol === "rediss:",
    name,
  };
}

/**
 * The workers' stalled-job timings. A worker holds a lock on its job for `lockMs` and renews it every
 * lockMs/2 while the run goes on (the run is a child process, so the worker's event loop is free to
 * renew it). A worker that dies stops renewing; every `stalledMs` each live worker looks for active
 * jobs whose lock has expired and puts them back in the queue. So a dead worker's run starts again on
 * another worker within about lockMs + 2·stalledMs. BullMQ's defaults (30 s, 30 s) suit real sweeps,
 * whose runs take minutes; a test sets a few seconds. `maxStalled`: how many worker deaths one run
 * survives before it is recorded as failed.
 */
export interface StallSettings {
  lockMs: number;
  stalledMs: number;
  maxStalled: number;
}

/** From LORA_TS_QUEUE_LOCK_MS, LORA_TS_QUEUE_STALLED_MS, LORA_TS_QUEUE_MAX_STALLED (or the defaults). */
export function stallSettings(env: NodeJS.ProcessEnv = process.env): StallSettings {
  const num = (key: string, dflt: number, min: number): number => {
    const v = env[key];
    if (v === undefined || v === "") return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new LoraTsError(`${key}=${JSON.stringify(v)}: an integer >= ${min}`);
    return n;
  };
  return {
    lockMs: num("LORA_TS_QUEUE_LOCK_MS", 30_000, 500),
    stalledMs: num("LORA_TS_QUEUE_STALLED_MS", 30_000, 100),
    maxStalled: num("LORA_TS_QUEUE_MAX_STALLED", 2, 0),
  };
}

/** ioredis options for a target: a connection that fails fast when Redis cannot be reached. */
export function redisOptions(t: QueueTarget, probe: boolean): Record<string, unknown> {
  return {
    host: t.host,
    port: t.port,
    db: t.db,
    ...(t.username !== undefined ? { username: t.username } : {}),
    ...(t.password !== undefined ? { password: t.password } : {}),
    ...(t.tls ? { tls: {} } : {}),
    connectTimeout: 3000,
    // The first connection (the probe) gives up at once; later ones retry a lost Redis for a while.
    retryStrategy: probe ? () => null : (times: number) => (times > 60 ? null : Math.min(times * 500, 5000)),
    maxRetriesPerRequest: null,
  };
}
