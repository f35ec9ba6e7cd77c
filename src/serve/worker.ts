/**
 * The engine's thread: builds the BatchEngine from workerData (WorkerSetup) and hosts it
 * (engine-host.ts). The model's decode steps block this thread, never the HTTP one.
 */
import { parentPort, workerData } from "node:worker_threads";
import { BatchEngine } from "../infer/batch-engine.js";
import { hostEngine } from "./engine-host.js";
import { serializeError, type WorkerSetup } from "./protocol.js";

async function start(port: NonNullable<typeof parentPort>, setup: WorkerSetup): Promise<void> {
  let engine: BatchEngine;
  try {
    engine = await BatchEngine.create(setup.model, setup.adapters, setup.options);
  } catch (e) {
    port.postMessage({ type: "failed", error: serializeError(e) });
    return;
  }
  const c = engine.config;
  hostEngine(port, engine, {
    maxPositions: c.maxPositions,
    eosTokenIds: [...c.eosTokenIds],
    vocabSize: c.vocabSize,
  });
}

if (parentPort) void start(parentPort, workerData as WorkerSetup);
