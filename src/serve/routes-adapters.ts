/**
 * GET /v1/models (the base model, then one entry per adapter with `parent` = the base's name) and
 * GET /v1/models/{id}, and
 * vLLM's run-time POST /v1/load_lora_adapter {lora_name, lora_path} and /v1/unload_lora_adapter
 * {lora_name}. Loading is off without --adapter-root; the path rules are in adapter-root.ts.
 */
import type { FastifyInstance } from "fastify";
import { EngineError } from "../infer/engine-types.js";
import { checkAdapterName, loadingOff } from "./adapter-root.js";
import { ApiError, oneLine, toApiError } from "./errors.js";
import { nowSeconds } from "./openai-format.js";
import { loadAdapterBody, unloadAdapterBody } from "./schemas.js";
import type { ServeState } from "./state.js";

export const OWNED_BY = "lora-ts";

export function adapterRoutes(app: FastifyInstance, state: ServeState): void {
  const models = () => [
    { id: state.baseName, object: "model", created: state.created, owned_by: OWNED_BY, parent: null },
    ...[...state.adapters].map(([name, created]) => ({
      id: name,
      object: "model",
      created,
      owned_by: OWNED_BY,
      parent: state.baseName,
    })),
  ];
  app.get("/v1/models", async () => ({ object: "list", data: models() }));
  app.get("/v1/models/:id", async (request) => {
    const { id } = request.params as { id: string };
    const m = models().find((x) => x.id === id);
    if (!m)
      throw new ApiError(
        404,
        `The model \`${id.slice(0, 100)}\` does not exist.`,
        "model",
        "model_not_found",
      );
    return m;
  });

  app.post("/v1/load_lora_adapter", { schema: { body: loadAdapterBody } }, async (request) => {
    const { lora_name: name, lora_path: path } = request.body as { lora_name: string; lora_path: string };
    if (state.adapterRoot === null) throw loadingOff();
    checkAdapterName(name);
    if (name === state.baseName)
      throw new ApiError(400, `lora_name: ${JSON.stringify(name)} is the base model's name`, "lora_name");
    if (state.adapters.has(name) || state.loading.has(name))
      throw new ApiError(
        409,
        `lora_name: an adapter ${JSON.stringify(name)} is already loaded`,
        "lora_name",
        "adapter_exists",
      );
    const real = await state.adapterRoot.resolve(path);
    state.loading.add(name);
    try {
      await state.engine.loadAdapter(name, real);
    } catch (e) {
      // The engine's refusals keep their status; anything else is the adapter's files' fault.
      if (e instanceof EngineError || e instanceof ApiError) throw toApiError(e, "lora_name");
      throw new ApiError(400, `lora_path: ${oneLine(e)}`, "lora_path", "invalid_adapter");
    } finally {
      state.loading.delete(name);
    }
    state.adapters.set(name, nowSeconds());
    return { status: "loaded", lora_name: name };
  });

  app.post("/v1/unload_lora_adapter", { schema: { body: unloadAdapterBody } }, async (request) => {
    const { lora_name: name } = request.body as { lora_name: string };
    checkAdapterName(name);
    const created = state.adapters.get(name);
    if (created === undefined)
      throw new ApiError(
        404,
        `lora_name: no adapter ${JSON.stringify(name)} is loaded`,
        "lora_name",
        "model_not_found",
      );
    // New requests for it are refused from now on; those running finish first (the engine's rule).
    state.adapters.delete(name);
    try {
      await state.engine.unloadAdapter(name);
    } catch (e) {
      if (!(e instanceof EngineError && e.kind === "unknown_adapter")) state.adapters.set(name, created);
      throw toApiError(e, "lora_name");
    }
    return { status: "unloaded", lora_name: name };
  });
}
