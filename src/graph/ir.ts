import { GraphBuildError } from "../util/errors.js";
import type { AnyTypedArray, DType } from "./dtype.js";
import { type Dim, fmtShape, type Shape } from "./shape.js";

/** An ONNX attribute, tagged because ONNX distinguishes INT from FLOAT and INTS from FLOATS. */
export type Attr =
  | { kind: "int"; v: number }
  | { kind: "float"; v: number }
  | { kind: "ints"; v: number[] }
  | { kind: "floats"; v: number[] }
  | { kind: "string"; v: string }
  | { kind: "tensor"; v: TensorData };

export const attr = {
  i: (v: number): Attr => ({ kind: "int", v }),
  f: (v: number): Attr => ({ kind: "float", v }),
  ints: (v: number[]): Attr => ({ kind: "ints", v }),
  floats: (v: number[]): Attr => ({ kind: "floats", v }),
  s: (v: string): Attr => ({ kind: "string", v }),
};

export interface TensorData {
  dtype: DType;
  dims: number[];
  data: AnyTypedArray;
}

/** Where an initializer's bytes live: in the model, or inside another file (e.g. a .safetensors). */
export type InitializerSource =
  | { kind: "data"; data: AnyTypedArray }
  | { kind: "external"; location: string; offset: number; length: number };

export class Value {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly dtype: DType,
    readonly shape: Shape,
    public name: string | undefined,
    readonly producer: Node | null,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  dim(axis: number): Dim {
    return this.shape[axis < 0 ? axis + this.shape.length : axis]!;
  }

  toString(): string {
    return `${this.name ?? `%${this.id}`}:${this.dtype}${fmtShape(this.shape)}`;
  }
}

export interface Node {
  readonly op: string;
  readonly domain: string; // "" for the ONNX default domain, "com.microsoft" for ORT contrib ops
  readonly inputs: (Value | null)[]; // null = an omitted optional input
  readonly outputs: Value[];
  readonly attrs: Record<string, Attr>;
}

/**
 * What a region's `forward` returns: the values it computes for the rest of the graph, and the values
 * its `backward` will receive (region inputs, values computed inside it, or other graph values such as
 * masks and labels). Nothing else crosses from the forward pass to the backward pass.
 */
export interface RegionForward<O extends Value[], S extends Value[]> {
  outputs: [...O];
  saved: [...S];
}

/**
 * A region's backward pass: d loss / d inputs[k] for each input (null: none, and always null where
 * `needs[k]` is false), built from `saved` and the gradient of each output (`gy[k]`; zeros where an
 * output gets none while another does). It may use only these values and the graph's shared
 * constants: `grad` refuses a backward that reaches any other value of the forward pass.
 */
export type RegionBackward<O extends Value[], S extends Value[]> = (
  saved: S,
  gy: { [K in keyof O]: Value },
  needs: boolean[],
) => (Value | null)[];

/** The definition of a region with a hand-written backward pass (see `Graph.region`). */
export interface RegionSpec<O extends Value[], S extends Value[]> {
  /** Named in build errors, e.g. "attention". */
  name: string;
  /** The values the region is differentiated with respect to. */
  inputs: Value[];
  forward: () => RegionForward<O, S>;
  backward: RegionBackward<O, S>;
}

/** A built region, as the autodiff sees it. */
export interface Region {
  readonly name: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly saved: readonly Value[];
  readonly backward: (saved: Value[], gy: Value[], needs: boolean[]) => (Value | null)[];
  /** Every node of the region, in graph order (skipped by the ordinary backward walk). */
  readonly nodes: ReadonlySet<Node>;
  /** The region's last node: the autodiff runs `backward` when its walk reaches it. */
  readonly last: Node;
}

export interface OutputSpec {
  dtype: DType;
  shape: Shape;
}

/**
 * A computation graph under construction. Nodes are appended in creation order, which is
 * always a topological order (a node can only use values that already exist).
 */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers = new Map<Value, InitializerSource>();
  /** Small constants are shared: the same scalar is emitted once. */
  readonly constCache = new Map<string, Value>();
  /** Symbolic dim name -> (graph input, axis) that carries its runtime value. */
  readonly symbolSources = new Map<string, { value: Value; axis: number }>();
  /** Regions whose backward pass is written by hand (see `region`), keyed by their last node. */
  readonly regions = new Map<Node, Region>();
  /**
   * Nodes whose outputs carry no gradient (ops.stopGradient): the autodiff treats their outputs as
   * constants, as PyTorch's detach() does.
   */
  readonly gradientStops = new Set<Node>();
  /**
   * The name of the region whose forward pass is being built, if any: regions do not nest, but a
   * layer checkpoint (checkpoint.ts) encloses regions built inside it.
   */
  private building: string | undefined;
  private nextId = 0;

  /**
   * Builds a region whose backward pass is `spec.backward` instead of the chain of its ops' rules:
   * useful when the region as a whole has a cheaper gradient (the LM head's cross-entropy needs no
   * one-hot tensor; attention can recompute its probabilities). The contract, checked by `grad`:
   *
   * - `forward()` builds the region's nodes and returns its outputs and the values it saves;
   *   `backward(saved, gy, needs)` receives exactly those saved values and builds the gradient of
   *   each of `inputs` from them and from the outputs' gradients `gy`.
   * - Only the outputs carry gradients out of the region: a value computed inside it that is used
   *   outside and gets a gradient is a GraphBuildError naming the region.
   * - Every value the forward pass uses that carries a gradient must be one of `inputs`.
   *
   * Returns the outputs.
   */
  region<O extends Value[], S extends Value[]>(spec: RegionSpec<O, S>): O {
    if (this.building !== undefined)
      throw new GraphBuildError(`region "${spec.name}" is built inside region "${this.building}"`);
    const first = this.nodes.length;
    this.building = spec.name;
    let built: RegionForward<O, S>;
    try {
      built = spec.forward();
    } finally {
      this.building = undefined;
    }
    const nodes = new Set(this.nodes.slice(first));
    const { outputs, saved } = built;
    if (outputs.length === 0) throw new GraphBuildError(`region "${spec.name}" has no outputs`);
    for (const y of outputs) {
      if (!y.producer || !nodes.has(y.producer))
        throw new GraphBuildError(`region "${spec.name}": output ${y} is not computed inside it`);
    }
    for (const v of [...spec.inputs, ...saved]) {
      if (v.graph !== this) throw new GraphBuildError(`region "${spec.name}": ${v} belongs to another graph`);
    }
    const last = this.nodes[this.nodes.length - 1]!;
    this.regions.set(last, {
      name: spec.name,
      inputs: [...spec.inputs],
      outputs: [...outputs],
      saved: [...saved],
      backward: spec.backward as unknown as Region["backward"],
      nodes,
      last,
    });
    return outputs as O;
  }

  newValue(dtype: DType, shape: Shape, producer: Node | null, name?: string): Value {
    return new Value(this, this.nextId++, dtype, [...shape], name, producer);
  }

  /** A runtime input. Symbolic dims in its shape become known symbols of the graph. */
  input(name: string, dtype: DType, shape: Shape): Value {
    const v = this.newValue(dtype, shape, null, name);
    this.inputs.push(v);
    shape.forEach((d, axis) => {
      if (typeof d === "string" && !d.includes("*") && !this.symbolSources.has(d)) {
        this.symbolSources.set(d, { value: v, axis });
      }
    });
    return v;
  }

  /** A named constant tensor (weights). */
  initializer(name: string, dtype: DType, shape: number[], source: InitializerSource): Value {
    const v = this.newValue(dtype, shape, null, name);
    this.initializers.set(v, source);
    return v;
  }

  output(v: Value, name?: string): Value {
    if (name !== undefined) {
      if (v.name !== undefined && v.name !== name && (v.producer === null || this.outputs.includes(v))) {
        // Graph inputs/initializers and existing outputs keep their name: route through Identity.
        const n = this.addNode("Identity", [v], {}, [{ dtype: v.dtype, shape: v.shape }]);
        v = n.outputs[0]!;
      }
      v.name = name;
    }
    this.outputs.push(v);
    return v;
  }

  addNode(
    op: string,
    inputs: (Value | null)[],
    attrs: Record<string, Attr>,
    outs: OutputSpec[],
    domain = "",
  ): Node {
    const outputs: Value[] = [];
    const node: Node = { op, domain, inputs, outputs, attrs };
    for (const o of outs) outputs.push(this.newValue(o.dtype, o.shape, node));
    this.nodes.push(node);
    return node;
  }
}
