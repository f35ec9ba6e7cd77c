/**
 * The thread boundary: an EngineError keeps its kind through structured cloning (so the HTTP side
 * still answers 429 or 404), and any other error keeps its message on one line.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { EngineError, type EngineErrorKind } from "../../src/infer/engine-types.js";
import { toApiError } from "../../src/serve/errors.js";
import { deserializeError, serializeError } from "../../src/serve/protocol.js";

test("protocol: EngineError kinds survive the crossing and map to their status codes", () => {
  const want: Record<EngineErrorKind, number> = {
    queue_full: 429,
    unknown_adapter: 404,
    adapter_exists: 409,
    too_many_adapters: 400,
    bad_request: 400,
    closed: 503,
  };
  for (const [kind, status] of Object.entries(want) as [EngineErrorKind, number][]) {
    const back = deserializeError(structuredClone(serializeError(new EngineError(kind, `why ${kind}`))));
    assert.ok(back instanceof EngineError);
    assert.equal(back.kind, kind);
    assert.equal(back.message, `why ${kind}`);
    const api = toApiError(back);
    assert.equal(api.status, status);
    if (kind === "queue_full") assert.equal(api.headers["retry-after"], "1");
  }
  const other = deserializeError(structuredClone(serializeError(new TypeError("bad\nthing"))));
  assert.ok(!(other instanceof EngineError));
  assert.equal(other.message, "bad thing");
  assert.equal(toApiError(other).status, 500);
});
