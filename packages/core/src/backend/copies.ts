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
 * Positions a KV-cache buffer is made with for T filled ones during decoding: T rounded up to a
 * multiple of CACHE_STEP, so the next steps write their keys and values into the spare rows in
 * place instead of copying the whole past every step (at 8 rows × 40 positions the copies were
 * ~4 ms of a 48 ms GPT-2 small step). A prefill (several new positions, no past) gets exactly T:
 * most are not followed by decoding (analyses, the lens).
 */
export const CACHE_STEP = 32;
const capacityFor = (T: number, prefill: boolean) => (prefill ? T : Math.ceil(T / CACHE_STEP) * CACHE_STEP);

/**
 * Positions written into each cache buffer so far, by whichever call wrote last. A buffer is grown
 * in place only by a call whose past ends where the buffer's writes end; a second call from the
 * same past (a branch) gets a new buffer instead of overwriting the positions the first one wrote.
 * A buffer this map does not know (a copy, a user's tensor) has exactly its past's positions.
 */
const written = new WeakMap<tfc.Tensor, number>();

/**
 * One layer's keys or values after this call: positions [0, P) of `past` ([B, H, C, Dh], C ≥ P,
 * or none) followed by S new positions, those of head h and position t read from `src` at float
 * offset `at(b, h, t)` (Dh floats). Written into past's spare rows in place when it has room and
 * no other call has written beyond P there, else into a new buffer (capacityFor; the P rows copied
 * once, the spare rows zeroed: attention multiplies them by zero weights, and 0 · NaN would not
 * be 0). Without `room`, exactly T positions and never in place (the old buffers stay as they
 * are): spare room only where every reader of the buffers reads them as they are at each call
 * (onnxruntime's products); tfjs' wasm matmul keeps its packed copy of an operand by tensor id and
 * would multiply by the positions a buffer held when it first saw it. Returns the buffer, whose first P + S positions are filled; undefined off the heap or
 * under a gradient tape (the caller takes tf.concat).
 */
export function appendPositions(past: tfc.Tensor4D | undefined, P: number, src: tfc.Tensor, B: number, H: number, S: number, Dh: number, at: (b: number, h: number, t: number) => number, room: boolean): tfc.Tensor4D | undefined {
  const heap = past ? onHeap(past, src) : onHeap(src);
  if (!heap) return undefined;
  const T = P + S;
  const inPlace = room && past !== undefined && past.shape[2] >= T && (written.get(past) ?? P) === P;
  const C = inPlace ? past.shape[2] : room ? capacityFor(T, !past && S > 1) : T;
  const out = inPlace ? past : heapTensor<tfc.Tensor4D>(heap.makeOutput([B, H, C, Dh], 'float32')); // before the views: it may grow the heap
  const o = heap.typedArrayFromHeap(out), all = new Float32Array(o.buffer);
  const po = o.byteOffset >> 2, ps = heap.typedArrayFromHeap(src).byteOffset >> 2, pp = past && !inPlace ? heap.typedArrayFromHeap(past).byteOffset >> 2 : 0;
  const Cp = past?.shape[2] ?? 0;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const dst = po + (b * H + h) * C * Dh;
      if (!inPlace) {
        if (P) all.copyWithin(dst, pp + (b * H + h) * Cp * Dh, pp + ((b * H + h) * Cp + P) * Dh);
        all.fill(0, dst + T * Dh, dst + C * Dh);
      }
      for (let t = 0; t < S; t++) {
        const s0 = ps + at(b, h, t);
        all.copyWithin(dst + (P + t) * Dh, s0, s0 + Dh);
      }
    }
  }
  written.set(out, T);
  return out;
}

/** appendPositions (with room) from the k (part 1) or v (part 2) third of qkv [B, S, 3·H·Dh]: the heads straight from the product. */
export function appendFromQkv(past: tfc.Tensor4D | undefined, P: number, qkv: tfc.Tensor, part: 1 | 2, H: number): tfc.Tensor4D | undefined {
  const [B, S, D3] = qkv.shape as number[];
  const D = D3 / 3, Dh = D / H;
  return appendPositions(past, P, qkv, B, H, S, Dh, (b, h, t) => (b * S + t) * D3 + part * D + h * Dh, true);
}

/**
 * The cache after `heads` [B, H, S, Dh] (the step-by-step path's keys or values, after their
 * hooks): appendPositions on the heap (`room`: where the engine's products read buffers in place),
 * else tf.concat of past's P positions and the heads.
 */
export function appendHeads(past: tfc.Tensor4D | undefined, P: number, heads: tfc.Tensor4D, room: boolean): tfc.Tensor4D {
  const [B, H, S, Dh] = heads.shape;
  const grown = appendPositions(past, P, heads, B, H, S, Dh, (b, h, t) => ((b * H + h) * S + t) * Dh, room);
  if (grown) return grown;
  if (!past) return heads;
  const filled = past.shape[2] === P ? past : tf.slice(past, [0, 0, 0, 0], [B, H, P, Dh]);
  return tf.concat([filled, heads], 2);
}
