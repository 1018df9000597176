/**
 * A dense layer as the forward pass uses it: y = x @ W + b, W [in, out] (HF Conv1D layout): the
 * contract every matrix engine implements (engine.ts picks one).
 *
 * Two implementations:
 *  - PackedLinear (gemm/packed-linear.ts; wasm and cpu backends): W lives in an Arena as [out, in]
 *    and sp's own SIMD kernel reads it in place over all cores. A decode step is one input row: its
 *    speed is the speed of streaming the weights, which XNNPACK reaches only about half of.
 *  - TensorLinear (here; tfjs-node / GPU, or $SP_MATMUL=tfjs): a tfjs tensor and tf.fused.matMul.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from './index.js';

export interface Linear {
  readonly inDim: number;
  readonly outDim: number;
  /** x [..., in] → x @ W + b, [..., out]. */
  apply(x: tfc.Tensor): tfc.Tensor;
  /**
   * gelu_new(x @ W + b) in one call, where the engine fuses it (the MLP's c_fc when no hook wants
   * hook_pre); undefined where it cannot (e.g. under a gradient tape): then apply and the engine's gelu.
   */
  applyGelu?(x: tfc.Tensor): tfc.Tensor | undefined;
  /** W[:, j] for each output j of `ids` → [n, in] (for the tied unembedding: token embeddings). */
  outputWeights(ids: tfc.Tensor1D): tfc.Tensor2D;
  /** W [in, out] as a new tensor; the caller disposes it. */
  weight(): tfc.Tensor2D;
  /** ‖W[i, :]‖ for every input i, e.g. the norms of the FF value vectors of c_proj. Cached. */
  rowNorms(): Float32Array;
  /** ‖W[:, j]‖ for every output j, e.g. the norms of the token embeddings. Cached. */
  colNorms(): Float32Array;
  dispose(): void;
}

/**
 * `value(x)` for a product the tape cannot see (a native or heap kernel): under tf.grad it is given
 * dx = `dx(dy as [rows, out])` reshaped to x (W needs no gradient); outside a tape, a plain call.
 */
export function withInputGradient(x: tfc.Tensor, outDim: number, value: (x: tfc.Tensor) => tfc.Tensor, dx: (dy: tfc.Tensor2D) => tfc.Tensor): tfc.Tensor {
  if (tf.engine().state.gradientDepth === 0) return value(x);
  const f = tf.customGrad((...args) => {
    const xin = args[0] as tfc.Tensor;
    return { value: value(xin), gradFunc: (dy: tfc.Tensor) => tf.reshape(dx(tf.reshape(dy, [-1, outDim]) as tfc.Tensor2D), xin.shape) };
  });
  return f(x);
}

/** alpha · a @ b (transB: @ bᵀ) for rank-4 tensors in tfjs: attention's batched products on engines without their own. */
export function tfjsBatchMatMul(a: tfc.Tensor, b: tfc.Tensor, transB: boolean, alpha = 1): tfc.Tensor {
  return tf.tidy(() => {
    const c = tf.matMul(a as tfc.Tensor4D, b as tfc.Tensor4D, false, transB);
    return alpha === 1 ? c : tf.mul(c, alpha);
  });
}

export class TensorLinear implements Linear {
  readonly inDim: number;
  readonly outDim: number;
  private norms: { row?: Float32Array; col?: Float32Array } = {};

  /** `w` [in, out] and `bias` [out] are owned (disposed) by this layer. */
  constructor(private readonly w: tfc.Tensor2D, private readonly bias?: tfc.Tensor1D) {
    [this.inDim, this.outDim] = w.shape;
  }

  apply(x: tfc.Tensor): tfc.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      // fused.matMul adds the bias inside the matmul kernel.
      const y = tf.fused.matMul({ a: tf.reshape(x, [-1, this.inDim]) as tfc.Tensor2D, b: this.w, bias: this.bias });
      return tf.reshape(y, [...lead, this.outDim]);
    });
  }

  outputWeights(ids: tfc.Tensor1D): tfc.Tensor2D {
    return tf.tidy(() => tf.transpose(tf.gather(this.w, ids, 1)) as tfc.Tensor2D);
  }

  weight(): tfc.Tensor2D {
    return tf.clone(this.w);
  }

  // On the host, sums in float64 (webgpu: taken at load, before the first upload drops the host values; tfjs-engine.ts).
  rowNorms(): Float32Array {
    return (this.norms.row ??= norms(this.w, true));
  }

  colNorms(): Float32Array {
    return (this.norms.col ??= norms(this.w, false));
  }

  dispose(): void {
    this.w.dispose();
    this.bias?.dispose();
  }
}

/** Euclidean norms of the rows (`rows`) or the columns of a [r, c] matrix, summed in float64. */
function norms(w: tfc.Tensor2D, rows: boolean): Float32Array {
  const [r, c] = w.shape;
  const v = w.dataSync() as Float32Array;
  const acc = new Float64Array(rows ? r : c);
  for (let i = 0; i < r; i++) {
    for (let j = 0, o = i * c; j < c; j++) {
      const x = v[o + j];
      acc[rows ? i : j] += x * x;
    }
  }
  return Float32Array.from(acc, Math.sqrt);
}
