/** The wasm backend's heap, for reading and writing tensor bytes without copies through JS arrays. */
import type * as tfc from '@tensorflow/tfjs-core';
import { LITTLE_ENDIAN } from '../platform.js';
import { tf } from './index.js';

export interface WasmHeap {
  /** An uninitialised tensor buffer on the heap (may grow the heap: take views after). */
  makeOutput(shape: number[], dtype: 'float32'): tfc.TensorInfo;
  /** A view of a tensor's bytes; invalid once the heap grows. */
  typedArrayFromHeap(t: tfc.TensorInfo): Float32Array;
}

/** The heap when the wasm backend is active (and the process is little-endian, as the heap is), else undefined. */
export function wasmHeap(): WasmHeap | undefined {
  return tf.getBackend() === 'wasm' && LITTLE_ENDIAN ? (tf.backend() as unknown as WasmHeap) : undefined;
}

/** A tensor owning the heap buffer `info` (from makeOutput). */
export function heapTensor<T extends tfc.Tensor>(info: tfc.TensorInfo): T {
  return tf.engine().makeTensorFromTensorInfo(info) as T;
}

/**
 * A float32 tensor's values to read now: a view of the wasm heap (no copy; valid until the next
 * tfjs op or the tensor's dispose, so read it before either), else a copy (dataSync).
 */
export function readNow(t: tfc.Tensor): Float32Array {
  const heap = t.dtype === 'float32' ? wasmHeap() : undefined;
  return heap ? heap.typedArrayFromHeap(t) : (t.dataSync() as Float32Array);
}
