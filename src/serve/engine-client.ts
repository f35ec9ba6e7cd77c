/**
 * The engine as the HTTP thread sees it: a GenerationEngine whose calls are messages to the worker
 * thread that runs the model (worker.ts). submit() streams the worker's TokenEvents back to onToken;
 * stats() stays synchronous, answered from the last stats message; EngineError kinds survive the
 * boundary (protocol.ts), so a full queue is still a 429 and an unknown adapter a 404. If the worker
 * dies, every pending call fails with EngineError "closed" and later calls are refused the same way.
 */
import { Worker } from "node:worker_threads";
import {
  EngineError,
  type EngineStats,
  type GenerationEngine,
  type GenRequest,
  type GenResult,
  type TokenEvent,
} from "../infer/engine-types.js";
import { LoraTsError } from "../util/errors.js";
import {
  deserializeError,
  type FromWorker,
  type ModelInfo,
  type ToWorker,
  type WorkerSetup,
} from "./protocol.js";

interface Pending {
  /** The engine request's id, to cancel it. */
  id: string;
  onToken: (t: TokenEvent) => void;
  resolve: (r: GenResult) => void;
  reject: (e: Error) => void;
}

interface Call {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** The compiled worker entry, beside this file (dist/src/serve/worker.js). */
export const WORKER_URL = new URL("./worker.js", import.meta.url);

export class EngineClient implements GenerationEngine {
  private readonly requests = new Map<number, Pending>();
  private readonly calls = new Map<number, Call>();
  private nextId = 1;
  private lastStats: EngineStats;
  private dead: Error | null = null;
  /** Called once if the engine's thread dies (not on close()). */
  onFailure: ((e: Error) => void) | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
    stats: EngineStats,
  ) {
    this.lastStats = stats;
    worker.on("message", (m: FromWorker) => this.onMessage(m));
    worker.on("error", (e) => this.fail(e));
    worker.on("exit", (code) => this.fail(new Error(`the engine thread exited (code ${code})`)));
  }

  /**
   * Starts the worker and resolves once its engine is ready (the model loaded). `url` is the worker
   * script (default: worker.js beside this file); a test may host another engine.
   */
  static start(setup: WorkerSetup, url: URL = WORKER_URL): Promise<EngineClient> {
    const worker = new Worker(url, { workerData: setup });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new LoraTsError(`the engine thread exited (code ${code})`));
      const onError = (e: Error) => reject(e);
      worker.once("exit", onExit);
      worker.once("error", onError);
      worker.once("message", (m: FromWorker) => {
        worker.off("exit", onExit);
        worker.off("error", onError);
        if (m.type === "ready") resolve(new EngineClient(worker, m.info, m.stats));
        else {
          const e = m.type === "failed" ? m.error : { message: `unexpected first message ${m.type}` };
          void worker.terminate();
          // A model that fails to load is the user's error (one line), whatever its kind.
          reject(new LoraTsError(e.message));
        }
      });
    });
  }

  private post(m: ToWorker): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case "tokens": {
        const p = this.requests.get(m.rid);
        if (!p) break;
        try {
          for (const ev of m.events) p.onToken(ev);
        } catch (e) {
          // A consumer that throws loses its own request, and nobody else's.
          this.requests.delete(m.rid);
          this.cancel(p.id);
          p.reject(e instanceof Error ? e : new Error(String(e)));
        }
        break;
      }
      case "done": {
        const p = this.requests.get(m.rid);
        this.requests.delete(m.rid);
        if (!p) break;
        if (m.error) p.reject(deserializeError(m.error));
        else p.resolve(m.result!);
        break;
      }
      case "reply": {
        const c = this.calls.get(m.call);
        this.calls.delete(m.call);
        if (!c) break;
        if (m.error) c.reject(deserializeError(m.error));
        else c.resolve();
        break;
      }
      case "stats":
        this.lastStats = m.stats;
        break;
      default:
        break;
    }
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = new EngineError("closed", `the engine stopped: ${e.message}`);
    this.onFailure?.(this.dead);
    for (const p of this.requests.values()) p.reject(this.dead);
    for (const c of this.calls.values()) c.reject(this.dead);
    this.requests.clear();
    this.calls.clear();
  }

  get alive(): boolean {
    return this.dead === null;
  }

  submit(req: GenRequest, onToken: (t: TokenEvent) => void): Promise<GenResult> {
    if (this.dead) return Promise.reject(this.dead);
    const rid = this.nextId++;
    return new Promise((resolve, reject) => {
      this.requests.set(rid, { id: req.id, onToken, resolve, reject });
      this.post({ type: "submit", rid, req });
    });
  }

  cancel(id: string): void {
    if (!this.dead) this.post({ type: "cancel", id });
  }

  private call(m: { type: "load"; name: string; dir: string } | { type: "unload" | "close"; name?: string }) {
    if (this.dead) return Promise.reject(this.dead);
    const call = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      this.calls.set(call, { resolve, reject });
      this.post({ ...m, call } as ToWorker);
    });
  }

  loadAdapter(name: string, dir: string): Promise<void> {
    return this.call({ type: "load", name, dir });
  }

  unloadAdapter(name: string): Promise<void> {
    return this.call({ type: "unload", name });
  }

  stats(): EngineStats {
    return this.lastStats;
  }

  /** Closes the engine (running requests end first), then the thread. */
  async close(): Promise<void> {
    if (!this.dead) {
      try {
        await this.call({ type: "close" });
      } finally {
        this.dead = new EngineError("closed", "the engine is closed");
        await this.worker.terminate();
      }
    }
  }
}
