/**
 * The packed-wasm engine's Linear: W stored [out, in] (rows padded to 16 floats) in an Arena and
 * multiplied by sp's SIMD kernel over the worker pool; x and y go through the arena's scratch.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { SpError } from '../../errors.js';
import { tf } from '../index.js';
import { heapTensor, readNow, wasmHeap } from '../heap.js';
import { withInputGradient, type Linear } from '../linear.js';
import { padK, SCRATCH_BYTES, type Arena } from './arena.js';
import { runGemm } from './pool.js';

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
    if (!this.owner) throw new SpError('BAD_INPUT', 'linear layer used after dispose (the model was disposed)');
    return this.owner;
  }

  apply(x: tfc.Tensor): tfc.Tensor {
    // The heap kernel is opaque to the tape: dx = dy · W ([out, in] as stored).
    return withInputGradient(x, this.outDim, (xin) => this.applyPacked(xin), (dy) => tf.matMul(dy, this.storedWeight()));
  }

  /** W as stored, [out, in], as a tensor kept until dispose: made on the first backward pass only. */
  private storedW: tfc.Tensor2D | undefined;
  private storedWeight(): tfc.Tensor2D {
    if (!this.storedW) {
      const K = this.inDim, N = this.outDim, f = this.arena.f32();
      const out = new Float32Array(N * K);
      for (let j = 0; j < N; j++) out.set(f.subarray(this.w / 4 + j * this.stride, this.w / 4 + j * this.stride + K), j * K);
      this.storedW = tf.keep(tf.tensor2d(out, [N, K]));
    }
    return this.storedW;
  }

  private applyPacked(x: tfc.Tensor): tfc.Tensor {
    const K = this.inDim, N = this.outDim;
    if (x.shape.at(-1) !== K || x.dtype !== 'float32') throw new SpError('BAD_INPUT', `linear: needs float32 [..., ${K}], got ${x.dtype} [${x.shape}]`);
    const shape = [...x.shape.slice(0, -1), N];
    const M = x.size / K;
    // On wasm, read x from and write y to the tfjs heap directly (no JS arrays: less copying, no GC).
    const heap = wasmHeap();
    const y = heap ? heapTensor(heap.makeOutput(shape, 'float32')) : undefined; // before taking views: it may grow the heap
    try {
      const xs = readNow(x); // [M, K]
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
    this.storedW?.dispose();
    this.storedW = undefined;
    this.owner = undefined; // the arena's memory is freed once no layer refers to it
  }
}
