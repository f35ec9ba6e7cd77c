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
  | { kind: "external"; file: string; offset: number; length: number };

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

export interface CustomGradient {
  inputs: Value[];
  output: Value;
  /** `needs[k]`: whether inputs[k] wants a gradient (a region may refuse or skip the others). */
  backward: (gy: Value, needs: boolean[]) => (Value | null)[];
  /** Every node of the region (skipped by the ordinary backward walk). */
  region: Set<Node>;
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
  /** Regions whose backward pass is written by hand (see `withCustomGradient`). */
  readonly customGradients = new Map<Node, CustomGradient>();
  private nextId = 0;

  /**
   * Builds a region whose backward pass is `backward` instead of the chain of its ops' rules: useful
   * when the region as a whole has a cheaper gradient (the LM head's cross-entropy needs no one-hot
   * tensor). `backward(gy, needs)` returns the gradient of each of `inputs` (null: none). The region's
   * internal values must not be used outside it, since no gradient flows back through them.
   */
  withCustomGradient(
    inputs: Value[],
    forward: () => Value,
    backward: (gy: Value, needs: boolean[]) => (Value | null)[],
  ): Value {
    const first = this.nodes.length;
    const out = forward();
    if (!out.producer || this.nodes.indexOf(out.producer) < first) {
      throw new Error("withCustomGradient: the region's output must be computed inside it");
    }
    const region = new Set(this.nodes.slice(first));
    this.customGradients.set(out.producer, { inputs, output: out, backward, region });
    return out;
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
