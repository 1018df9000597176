/** The tfjs engine: every Linear a tfjs tensor multiplied by tf.fused.matMul (tfjs-node / GPU, or $SP_MATMUL=tfjs). */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from './index.js';
import { TensorLinear, type Linear } from './linear.js';
import type { Engine, EngineLinears, LinearSpec, Uploader } from './upload.js';
import { syncReads } from './webgpu.js';

export const tfjsEngine: Engine = {
  name: 'tfjs',
  loadLinears(up: Uploader, specs: readonly LinearSpec[]): EngineLinears {
    up.reserveAll();
    const made: tfc.Tensor[] = [];
    const keep = <T extends tfc.Tensor>(t: T): T => (made.push(t), t);
    try {
      const linears = specs.map((s): Linear => {
        // Stored [in, out]: x @ W is several times faster on wasm than x @ Wᵀ, so [out, in] files are transposed.
        const w = keep(s.stored === 'in-out' ? up.tensor<tfc.Tensor2D>(s.weight, [s.inDim, s.outDim]) : up.transposed(s.weight, s.outDim, s.inDim));
        const b = s.bias === undefined ? undefined : keep(up.tensor<tfc.Tensor1D>(s.bias, [s.outDim]));
        const l = new TensorLinear(w, b);
        // webgpu drops a tensor's host values at its first upload and cannot read them back
        // synchronously: take the norms the model will ask for while they are there.
        if (!syncReads() && s.norms) (s.norms === 'rows' ? l.rowNorms() : l.colNorms());
        return l;
      });
      return { linears, arenas: 0, release: () => {} };
    } catch (e) {
      tf.dispose(made);
      throw e;
    }
  },
};
