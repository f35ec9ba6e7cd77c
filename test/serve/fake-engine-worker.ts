/**
 * A worker for engine-client tests: a scripted GenerationEngine behind the real engine host. The
 * first prompt id chooses the behaviour: 429 → a full queue, 404 → an unknown adapter, 666 → the
 * thread dies; otherwise `maxTokens` tokens counting up from that id.
 */
import { parentPort } from "node:worker_threads";
import { EngineError, type GenerationEngine } from "../../src/infer/engine-types.js";
import { hostEngine } from "../../src/serve/engine-host.js";

const adapters = new Set<string>();
const engine: GenerationEngine = {
  async submit(req, onToken) {
    const first = req.prompt[0]!;
    if (first === 429) throw new EngineError("queue_full", "the queue is full");
    if (first === 404) throw new EngineError("unknown_adapter", "no such adapter");
    if (first === 666) process.exit(3);
    for (let i = 0; i < req.maxTokens; i++) onToken({ id: first + i, logprob: -i });
    return { finish: "length", promptTokens: req.prompt.length, completionTokens: req.maxTokens };
  },
  cancel() {},
  async loadAdapter(name) {
    if (adapters.has(name)) throw new EngineError("adapter_exists", `${name} is loaded`);
    adapters.add(name);
  },
  async unloadAdapter(name) {
    if (!adapters.delete(name)) throw new EngineError("unknown_adapter", `no ${name}`);
  },
  stats: () => ({ queued: 0, running: 0, lastBatchSize: 0, adapters: [...adapters] }),
  async close() {},
};

hostEngine(parentPort!, engine, { maxPositions: 64, eosTokenIds: [0], vocabSize: 1000 });
