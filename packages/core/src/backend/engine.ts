/**
 * Engine choice, the one place that knows the matrix engines: a new engine (native, GPU) is a file
 * implementing `Engine` (upload.ts) plus its line in `chooseEngine`; model/ does not change.
 * `loadParameters` is what the model calls to put its parameters into backend memory.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from './index.js';
import { SpError } from '../errors.js';
import { engineFromEnv, matmulFromEnv } from './env.js';
import { gemmSupported } from './gemm/arena.js';
import { geluNew } from './kernels.js';
import { packedWasmEngine } from './gemm/packed-engine.js';
import { tfjsBatchMatMul, type Linear } from './linear.js';
import { ortAvailable, ortEngine, requireOrt } from './ort-engine.js';
import { tfjsEngine } from './tfjs-engine.js';
import { Uploader, type AttentionCore, type Engine, type LinearSpec, type ParameterSource, type TensorSpec, type UploadOptions } from './upload.js';

export { arenaCapacity } from './gemm/packed-engine.js';
export { gemmThreads } from './gemm/pool.js';
export type { Linear } from './linear.js';
export type { AttentionCore, LinearSpec, ParameterSource, TensorSpec, UploadOptions } from './upload.js';

/**
 * Whether the engine for the active backend is sp's packed wasm kernel (big matrices in Arenas).
 * $SP_MATMUL=tfjs keeps them as tfjs tensors (XNNPACK), e.g. to compare.
 */
export function usePackedMatmul(): boolean {
  return chooseEngine() === packedWasmEngine;
}

const onWasmOrCpu = () => tf.getBackend() === 'wasm' || tf.getBackend() === 'cpu';

/**
 * The engine for the active tfjs backend, $SP_ENGINE and $SP_MATMUL: on wasm/cpu onnxruntime when
 * onnxruntime-node loads, else sp's packed wasm kernel; tfjs' matmuls elsewhere (tfjs-node, GPU).
 * $SP_ENGINE=ort|wasm|tfjs chooses (an engine that cannot run here is an SpError, not a fallback);
 * $SP_MATMUL=sp|tfjs, the older switch, means wasm|tfjs.
 */
export function chooseEngine(): Engine {
  const matmul = matmulFromEnv(); // any value but sp / tfjs is an SpError
  const want = engineFromEnv() ?? (matmul === 'tfjs' ? 'tfjs' : matmul === 'sp' ? 'wasm' : undefined);
  if (want === 'tfjs') return tfjsEngine;
  if (want !== undefined && !onWasmOrCpu()) throw new SpError('UNSUPPORTED', `engine "${want}" runs on the wasm and cpu backends (this is ${tf.getBackend()})`);
  if (want === 'ort') {
    requireOrt(); // says why not, in one line
    return ortEngine;
  }
  if (want === 'wasm') {
    if (!gemmSupported()) throw new SpError('UNSUPPORTED', 'engine "wasm" needs WebAssembly SIMD and threads, which this Node lacks');
    return packedWasmEngine;
  }
  if (!onWasmOrCpu()) return tfjsEngine;
  if (ortAvailable()) return ortEngine;
  return gemmSupported() ? packedWasmEngine : tfjsEngine;
}

/** The name of the engine a model loaded now gets: 'ort', 'wasm' (sp's packed kernel) or 'tfjs'. */
export function engineName(): string {
  return chooseEngine().name;
}

/** A model's parameters in backend memory: the Linear layers and plain tensors, in request order. */
export interface LoadedParameters {
  readonly linears: Linear[];
  readonly tensors: tfc.Tensor[];
  /** The engine that holds the Linear layers ('ort', 'wasm', 'tfjs'). */
  readonly engine: string;
  /** alpha · a @ b (transB: @ bᵀ) for rank-4 tensors: the engine's own, else tfjs'. */
  readonly batchMatMul: (a: tfc.Tensor, b: tfc.Tensor, transB: boolean, alpha?: number) => tfc.Tensor;
  /** The engine's fused attention core (upload.ts), where it has one. */
  readonly attention?: AttentionCore;
  /** softmax over the last axis and gelu_new: the engine's kernels (those of its fused calls), else tfjs' / sp's. */
  readonly softmax: (x: tfc.Tensor) => tfc.Tensor;
  readonly gelu: (x: tfc.Tensor) => tfc.Tensor;
  /** Arenas holding packed matrices (0 for the tfjs engine; 0 again after dispose). */
  readonly arenas: number;
  /** Frees everything: tensors, layers, then the engine's own memory. */
  dispose(): void;
}

/** Loads `linears` through the chosen engine, then `tensors` as float32 tfjs tensors. */
export function loadParameters(src: ParameterSource, req: { linears: readonly LinearSpec[]; tensors: readonly TensorSpec[] }, opts: UploadOptions = {}): LoadedParameters {
  const up = new Uploader(src, opts.allowNonfinite);
  const chosen = chooseEngine();
  const engine = chosen.loadLinears(up, req.linears);
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
    engine: chosen.name,
    batchMatMul: chosen.batchMatMul ?? tfjsBatchMatMul,
    attention: chosen.attention,
    softmax: (x) => chosen.softmax?.(x) ?? tf.softmax(x),
    gelu: (x) => chosen.gelu?.(x) ?? geluNew(x),
    get arenas() {
      return arenas;
    },
    dispose,
  };
}
