/**
 * Engine choice, the one place that knows the matrix engines: a new engine (native, GPU) is a file
 * implementing `Engine` (upload.ts) plus its line in `chooseEngine`; model/ does not change.
 * `loadParameters` is what the model calls to put its parameters into backend memory.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from './index.js';
import { matmulFromEnv } from './env.js';
import { gemmSupported } from './gemm/arena.js';
import { packedWasmEngine } from './gemm/packed-engine.js';
import type { Linear } from './linear.js';
import { tfjsEngine } from './tfjs-engine.js';
import { Uploader, type Engine, type LinearSpec, type ParameterSource, type TensorSpec, type UploadOptions } from './upload.js';

export { arenaCapacity } from './gemm/packed-engine.js';
export { gemmThreads } from './gemm/pool.js';
export type { Linear } from './linear.js';
export type { LinearSpec, ParameterSource, TensorSpec, UploadOptions } from './upload.js';

/**
 * Big matrices in an Arena for sp's kernel on the wasm and cpu backends; $SP_MATMUL=tfjs keeps them
 * as tfjs tensors (XNNPACK), e.g. to compare.
 */
export function usePackedMatmul(): boolean {
  if (matmulFromEnv() === 'tfjs') return false; // any value but sp / tfjs is an SpError
  return (tf.getBackend() === 'wasm' || tf.getBackend() === 'cpu') && gemmSupported();
}

/** The engine for the active tfjs backend and $SP_MATMUL. */
export function chooseEngine(): Engine {
  return usePackedMatmul() ? packedWasmEngine : tfjsEngine;
}

/** A model's parameters in backend memory: the Linear layers and plain tensors, in request order. */
export interface LoadedParameters {
  readonly linears: Linear[];
  readonly tensors: tfc.Tensor[];
  /** Arenas holding packed matrices (0 for the tfjs engine; 0 again after dispose). */
  readonly arenas: number;
  /** Frees everything: tensors, layers, then the engine's own memory. */
  dispose(): void;
}

/** Loads `linears` through the chosen engine, then `tensors` as float32 tfjs tensors. */
export function loadParameters(src: ParameterSource, req: { linears: readonly LinearSpec[]; tensors: readonly TensorSpec[] }, opts: UploadOptions = {}): LoadedParameters {
  const up = new Uploader(src, opts.allowNonfinite);
  const engine = chooseEngine().loadLinears(up, req.linears);
  const tensors: tfc.Tensor[] = [];
  let arenas = engine.arenas;
  const dispose = () => {
    tf.dispose(tensors);
    for (const l of engine.linears) l.dispose();
    engine.release();
    tensors.length = 0;
    arenas = 0;
  };
  try {
    for (const t of req.tensors) tensors.push(up.tensor(t.name, t.shape));
  } catch (e) {
    dispose();
    throw e;
  }
  return {
    linears: engine.linears,
    tensors,
    get arenas() {
      return arenas;
    },
    dispose,
  };
}
