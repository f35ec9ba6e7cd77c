/**
 * The worker side of the thread boundary: runs any GenerationEngine behind a MessagePort, speaking
 * protocol.ts. Kept apart from worker.ts (the entry that builds the real BatchEngine) so a test can
 * host another engine behind the same protocol.
 */
import type { MessagePort } from "node:worker_threads";
import type { GenerationEngine, TokenEvent } from "../infer/engine-types.js";
import type { FromWorker, ModelInfo, ToWorker } from "./protocol.js";
import { serializeError } from "./protocol.js";

/** How often the worker reports the engine's stats while it is idle enough to run timers. */
const STATS_EVERY_MS = 100;

export function hostEngine(port: MessagePort, engine: GenerationEngine, info: ModelInfo): void {
  const send = (m: FromWorker) => port.postMessage(m);
  const stats = () => send({ type: "stats", stats: engine.stats() });
  // Tokens of one request are sent together per event-loop turn: one message per decode step.
  const pending = new Map<number, TokenEvent[]>();
  let flushQueued = false;
  const flush = () => {
    flushQueued = false;
    for (const [rid, events] of pending) send({ type: "tokens", rid, events });
    pending.clear();
  };
  const timer = setInterval(stats, STATS_EVERY_MS);
  timer.unref();

  port.on("message", (m: ToWorker) => {
    switch (m.type) {
      case "submit": {
        let result: ReturnType<GenerationEngine["submit"]>;
        try {
          result = engine.submit(m.req, (ev) => {
            const list = pending.get(m.rid);
            if (list) list.push(ev);
            else pending.set(m.rid, [ev]);
            if (!flushQueued) {
              flushQueued = true;
              setImmediate(flush);
            }
          });
        } catch (e) {
          result = Promise.reject(e);
        }
        stats();
        result.then(
          (r) => {
            flush();
            send({ type: "done", rid: m.rid, result: r });
            stats();
          },
          (e: unknown) => {
            flush();
            send({ type: "done", rid: m.rid, error: serializeError(e) });
            stats();
          },
        );
        break;
      }
      case "cancel":
        engine.cancel(m.id);
        break;
      case "load":
      case "unload": {
        const run = async () =>
          m.type === "load" ? engine.loadAdapter(m.name, m.dir) : engine.unloadAdapter(m.name);
        run().then(
          () => {
            send({ type: "reply", call: m.call });
            stats();
          },
          (e: unknown) => send({ type: "reply", call: m.call, error: serializeError(e) }),
        );
        break;
      }
      case "close":
        clearInterval(timer);
        engine.close().then(
          () => send({ type: "reply", call: m.call }),
          (e: unknown) => send({ type: "reply", call: m.call, error: serializeError(e) }),
        );
        break;
    }
  });
  send({ type: "ready", info, stats: engine.stats() });
}
