/**
 * A dense layer as the forward pass uses it: y = x @ W + b, W [in, out] (HF Conv1D layout).
 *
 * Two implementations:
 *  - PackedLinear (wasm and cpu backends): W lives in an Arena as [out, in] and sp's own SIMD kernel
 *    reads it in place over all cores (backend/gemm). A decode step is one input row: its speed is
 *    the speed of streaming the weights, which XNNPACK reaches only about half of.
 *  - TensorLinear (tfjs-node / GPU): a tfjs tensor and tf.fused.matMul.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../backend/index.js';
import { padK, SCRATCH_BYTES, type Arena } from '../backend/gemm/arena.js';
import { runGemm } from '../backend/gemm/pool.js';
import { heapTensor, wasmHeap } from '../backend/heap.js';

export interface Linear {
  readonly inDim: number;
  readonly outDim: number;
  /** x [..., in] → x @ W + b, [..., out]. */
  apply(x: tfc.Tensor): tfc.Tensor;
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

  rowNorms(): Float32Array {
    return (this.norms.row ??= tf.tidy(() => tf.norm(this.w, 'euclidean', 1)).dataSync() as Float32Array);
  }

  colNorms(): Float32Array {
    return (this.norms.col ??= tf.tidy(() => tf.norm(this.w, 'euclidean', 0)).dataSync() as Float32Array);
  }

  dispose(): void {
    this.w.dispose();
    this.bias?.dispose();
  }
}

export class PackedLinear implements Linear {
  /** Floats per stored row (inDim padded to 16, zeros in the padding). */
  readonly stride: number;
  private norms: { row?: Float32Array; col?: Float32Array } = {};

  /**
   * `w`: byte address in `arena` of W stored as [out, stride]; `bias`: byte address of [out] floats,
   * or 0 for none. Both belong to the arena (freed with it).
   */
  private owner: Arena | undefined;

  constructor(
    arena: Arena,
    private readonly w: number,
    private readonly bias: number,
    readonly inDim: number,
    readonly outDim: number,
  ) {
    this.stride = padK(inDim);
    this.owner = arena;
  }

  private get arena(): Arena {
    if (!this.owner) throw new Error('linear layer used after dispose');
    return this.owner;
  }

  apply(x: tfc.Tensor): tfc.Tensor {
    const K = this.inDim, N = this.outDim;
    if (x.shape.at(-1) !== K || x.dtype !== 'float32') throw new Error(`linear: needs float32 [..., ${K}], got ${x.dtype} [${x.shape}]`);
    const shape = [...x.shape.slice(0, -1), N];
    const M = x.size / K;
    // On wasm, read x from and write y to the tfjs heap directly (no JS arrays: less copying, no GC).
    const heap = wasmHeap();
    const y = heap ? heapTensor(heap.makeOutput(shape, 'float32')) : undefined; // before taking views: it may grow the heap
    try {
      const xs = heap ? heap.typedArrayFromHeap(x) : (x.dataSync() as Float32Array); // [M, K]
      const ys = y ? heap!.typedArrayFromHeap(y) : new Float32Array(M * N); // [M, N]
      this.gemmRows(xs, ys, M);
      return y ?? tf.tensor(ys, shape, 'float32');
    } catch (e) {
      y?.dispose();
      throw e;
    }
  }

  /** ys [M, N] = xs [M, K] · Wᵀ + b through the arena. */
  private gemmRows(xs: Float32Array, ys: Float32Array, M: number): void {
    const K = this.inDim, N = this.outDim, Kp = this.stride;
    // Inputs and outputs go through the arena's scratch space, a bounded number of rows at a time.
    const rows = Math.max(1, Math.floor(SCRATCH_BYTES / ((Kp + N) * 4)));
    for (let m0 = 0; m0 < M; m0 += rows) {
      const mc = Math.min(rows, M - m0);
      const xp = this.arena.scratch(mc * (Kp + N) * 4);
      const yp = xp + mc * Kp * 4;
      const f = this.arena.f32();
      if (Kp === K) f.set(xs.subarray(m0 * K, (m0 + mc) * K), xp / 4);
      else {
        for (let r = 0; r < mc; r++) {
          const o = xp / 4 + r * Kp;
          f.set(xs.subarray((m0 + r) * K, (m0 + r + 1) * K), o);
          f.fill(0, o + K, o + Kp); // padding must be 0: 0 × (stored 0) keeps the sum exact
        }
      }
      runGemm(this.arena, { W: this.w, x: xp, y: yp, bias: this.bias, Kp, N, M: mc });
      ys.set(f.subarray(yp / 4, yp / 4 + mc * N), m0 * N);
    }
  }

  outputWeights(ids: tfc.Tensor1D): tfc.Tensor2D {
    const idx = ids.dataSync();
    const K = this.inDim, f = this.arena.f32();
    const out = new Float32Array(idx.length * K);
    for (let i = 0; i < idx.length; i++) {
      const j = idx[i];
      if (!(j >= 0 && j < this.outDim)) throw new RangeError(`index ${j} out of range [0, ${this.outDim})`);
      const o = this.w / 4 + j * this.stride;
      out.set(f.subarray(o, o + K), i * K);
    }
    return tf.tensor2d(out, [idx.length, K]);
  }

  weight(): tfc.Tensor2D {
    const K = this.inDim, N = this.outDim, f = this.arena.f32();
    const out = new Float32Array(K * N);
    for (let j = 0; j < N; j++) {
      const o = this.w / 4 + j * this.stride;
      for (let i = 0; i < K; i++) out[i * N + j] = f[o + i];
    }
    return tf.tensor2d(out, [K, N]);
  }

  rowNorms(): Float32Array {
    if (!this.norms.row) {
      const K = this.inDim, f = this.arena.f32();
      const sq = new Float64Array(K);
      for (let j = 0; j < this.outDim; j++) {
        const o = this.w / 4 + j * this.stride;
        for (let i = 0; i < K; i++) sq[i] += f[o + i] * f[o + i];
      }
      this.norms.row = Float32Array.from(sq, Math.sqrt);
    }
    return this.norms.row;
  }

  colNorms(): Float32Array {
    if (!this.norms.col) {
      const K = this.inDim, f = this.arena.f32();
      const n = new Float32Array(this.outDim);
      for (let j = 0; j < this.outDim; j++) {
        const o = this.w / 4 + j * this.stride;
        let s = 0;
        for (let i = 0; i < K; i++) s += f[o + i] * f[o + i];
        n[j] = Math.sqrt(s);
      }
      this.norms.col = n;
    }
    return this.norms.col;
  }

  dispose(): void {
    this.owner = undefined; // the arena's memory is freed once no layer refers to it
  }
}
