/** Backward rules of indexing ops: a gather's gradient is a scatter-add. */
import { GraphBuildError } from "../../util/errors.js";
import { defineGrad } from "../autodiff.js";
import type { Value } from "../ir.js";
import * as o from "../ops.js";
import { intAttr } from "./const-value.js";

/** Embedding lookup y = E[ids]: dE = zeros(E) with g's rows added at ids (repeats accumulate). */
defineGrad("Gather", ({ node, gy }) => {
  const [data, indices] = node.inputs as Value[];
  if (intAttr(node, "axis", 0) !== 0)
    throw new GraphBuildError("autodiff: Gather is differentiable on axis 0 only");
  const idx = o.unsqueeze(o.cast(indices!, "int64"), [-1]);
  return [o.scatterND(o.zerosLike(data!), idx, gy[0]!, "add"), null];
});

defineGrad("GatherElements", ({ node, gy }) => {
  const [data, indices] = node.inputs as Value[];
  const axis = intAttr(node, "axis", 0);
  return [o.scatterElements(o.zerosLike(data!), indices!, gy[0]!, axis, "add"), null];
});
