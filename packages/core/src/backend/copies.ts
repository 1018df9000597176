/**
 * Block copies the decode loop makes every step, on the wasm heap with TypedArray.set (memcpy)
 * instead of tfjs' wasm kernels, which index element by element: growing the KV cache by one
 * position (tf.concat on axis 2) was ~5 ms of a 60 ms 8-row GPT-2 small step, and tiling a
 * prompt's cache for its samples (tf.gather on axis 0) ~60 ms of a 16-token prefill. Elsewhere
 * (other backends, under a gradient tape, other dtypes) the tfjs ops, with the same values.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { heapTensor, wasmHeap } from './heap.js';
import { tf } from './index.js';

const onHeap = (...ts: tfc.Tensor[]) => (tf.engine().state.gradientDepth === 0 && ts.every((t) => t.dtype === 'float32') ? wasmHeap() : undefined);

/** tf.concat([a, b], 2) for rank-4 tensors [B, H, Ta | Tb, D] (past and new keys or values). */
export function concatPositions(a: tfc.Tensor4D, b: tfc.Tensor4D): tfc.Tensor4D {
  const heap = onHeap(a, b);
  const [B, H, Ta, D] = a.shape;
  const Tb = b.shape[2];
  if (!heap || b.shape[0] !== B || b.shape[1] !== H || b.shape[3] !== D) return tf.concat([a, b], 2);
  const out = heapTensor<tfc.Tensor4D>(heap.makeOutput([B, H, Ta + Tb, D], 'float32')); // before the views: it may grow the heap
  // All three live in the one heap: copyWithin on a view of all of it, no view per block.
  const o = heap.typedArrayFromHeap(out), all = new Float32Array(o.buffer);
  const pa = heap.typedArrayFromHeap(a).byteOffset >> 2, pb = heap.typedArrayFromHeap(b).byteOffset >> 2, po = o.byteOffset >> 2;
  const na = Ta * D, nb = Tb * D;
  for (let i = 0; i < B * H; i++) {
    const dst = po + i * (na + nb);
    all.copyWithin(dst, pa + i * na, pa + (i + 1) * na);
    all.copyWithin(dst + na, pb + i * nb, pb + (i + 1) * nb);
  }
  return out;
}

/** tf.gather(t, rows) on axis 0: row rows[i] of t becomes row i. */
export function gatherRows<T extends tfc.Tensor>(t: T, rows: readonly number[]): T {
  const heap = onHeap(t);
  const n = t.shape[0]!;
  if (!heap || rows.some((r) => !(Number.isInteger(r) && r >= 0 && r < n))) return tf.gather(t, tf.tensor1d(rows as number[], 'int32')) as T;
  const stride = t.size / n;
  const out = heapTensor<T>(heap.makeOutput([rows.length, ...t.shape.slice(1)], 'float32'));
  const o = heap.typedArrayFromHeap(out), all = new Float32Array(o.buffer);
  const pt = heap.typedArrayFromHeap(t).byteOffset >> 2, po = o.byteOffset >> 2;
  rows.forEach((r, i) => all.copyWithin(po + i * stride, pt + r * stride, pt + (r + 1) * stride));
  return out;
}

/**
 * The next KV cache of one layer: past [B, H, P, Dh] (or none) followed along positions by the
 * heads of part `part` (0 q, 1 k, 2 v) of qkv [B, S, 3·H·Dh], i.e. tf.concat([past,
 * transpose(reshape(qkv part, [B, S, H, Dh]), [0, 2, 1, 3])], 2), as block copies on the heap.
 * Undefined off the heap (the caller takes the tfjs ops).
 */
export function appendHeads(past: tfc.Tensor4D | undefined, qkv: tfc.Tensor, part: 0 | 1 | 2, H: number): tfc.Tensor4D | undefined {
  const heap = past ? onHeap(past, qkv) : onHeap(qkv);
  if (!heap) return undefined;
  const [B, S, D3] = qkv.shape as number[];
  const D = D3 / 3, Dh = D / H, P = past ? past.shape[2] : 0, T = P + S;
  const out = heapTensor<tfc.Tensor4D>(heap.makeOutput([B, H, T, Dh], 'float32')); // before the views: it may grow the heap
  const o = heap.typedArrayFromHeap(out), all = new Float32Array(o.buffer);
  const po = o.byteOffset >> 2, pq = heap.typedArrayFromHeap(qkv).byteOffset >> 2, pp = past ? heap.typedArrayFromHeap(past).byteOffset >> 2 : 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const dst = po + (b * H + h) * T * Dh;
      if (P) all.copyWithin(dst, pp + (b * H + h) * P * Dh, pp + (b * H + h + 1) * P * Dh);
      for (let t = 0; t < S; t++) {
        const src = pq + (b * S + t) * D3 + part * D + h * Dh;
        all.copyWithin(dst + (P + t) * Dh, src, src + Dh);
      }
    }
  }
  return out;
}
