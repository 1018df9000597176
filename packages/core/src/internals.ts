/**
 * `@sp/core/internals`: engine details for bench, tests and tools that measure the engine — the
 * forward pass's KV cache and patches, the device weights, the Linear contract, the matmul engine
 * choice. Not part of the public API: anything here may change without notice.
 */
import type { GPT2 } from './model/gpt2.js';
import type { DeviceWeights } from './model/weights.js';
import type { Checkpoint } from './weights/checkpoint.js';

export type { KVCache, LayerKV, Patch, ForwardOutput } from './model/forward.js';
export type { DeviceWeights, BlockWeights } from './model/weights.js';
export { arenaCapacity, usePackedMatmul, gemmThreads, engineName } from './backend/engine.js';
export type { Linear } from './backend/linear.js';

/** The model's parameters on the device (arenas, Linear matrices, LayerNorm tensors). */
export function deviceWeights(model: GPT2): DeviceWeights {
  return model['weights']; // private on the public type; this entry is the one way in
}

/** The checkpoint the model reads FF keys/values and token embeddings from. */
export function checkpointOf(model: GPT2): Checkpoint {
  return model['checkpoint'];
}

/** What bench reports about a loaded model: parameter bytes in the file, its matrix engine, arenas holding the packed matrices. */
export function engineInfo(model: GPT2): { parameterBytes: number; engine: string; arenas: number; dir: string } {
  const p = deviceWeights(model).params;
  return { parameterBytes: model.parameterBytes, engine: p.engine, arenas: p.arenas, dir: checkpointOf(model).dir };
}
