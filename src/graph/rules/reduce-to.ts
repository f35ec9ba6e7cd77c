import { GraphBuildError } from "../../util/errors.js";
import type { Value } from "../ir.js";
import { reduceSum } from "../ops.js";
import { dimEq, fmtShape, type Shape } from "../shape.js";

/**
 * The gradient of a broadcast: sum `g` over the axes that broadcasting added or stretched, so it gets
 * back the operand's `shape`. Decided when the graph is built, from the static (symbolic) shapes.
 */
export function sumToShape(g: Value, shape: Shape): Value {
  const lead = g.rank - shape.length;
  if (lead < 0)
    throw new GraphBuildError(`autodiff: cannot reduce ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
  let out = g;
  if (lead > 0) out = reduceSum(out, [...Array(lead).keys()], false);
  const axes: number[] = [];
  shape.forEach((d, i) => {
    const gd = out.shape[i]!;
    if (dimEq(d, gd)) return;
    if (d === 1) axes.push(i);
    else throw new GraphBuildError(`autodiff: cannot reduce ${fmtShape(g.shape)} to ${fmtShape(shape)}`);
  });
  if (axes.length > 0) out = reduceSum(out, axes, true);
  return out;
}
