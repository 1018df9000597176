/**
 * The parameters the forward pass needs, by their names in weights/names.ts, and the shapes it holds
 * them in. How they are held (packed arenas, tfjs tensors, another engine) is the backend's choice:
 * backend/engine.ts loads them.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { loadParameters, type LinearSpec, type Linear, type LoadedParameters, type TensorSpec, type UploadOptions } from '../backend/engine.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import { blockMatrices, blockNorms, LN_F, WPE, WTE } from '../weights/names.js';

export type { UploadOptions } from '../backend/engine.js';

export interface BlockWeights {
  ln1w: tfc.Tensor1D; ln1b: tfc.Tensor1D;
  qkv: Linear; //  c_attn:  [d_model → 3*d_model], outputs q|k|v
  o: Linear; //    c_proj:  [d_model → d_model]
  ln2w: tfc.Tensor1D; ln2b: tfc.Tensor1D;
  fc: Linear; //   c_fc:    [d_model → d_mlp]  (FF keys are the columns of its W)
  proj: Linear; // c_proj:  [d_mlp → d_model]  (FF values are the rows of its W)
}

export interface DeviceWeights {
  /** The tied unembedding W_U = W_Eᵀ, [d_model → d_vocab]; token embeddings are its output weights. */
  unembed: Linear;
  wpe: tfc.Tensor2D; // [n_ctx, d_model]
  blocks: BlockWeights[];
  lnfw: tfc.Tensor1D; lnfb: tfc.Tensor1D;
  /** The backend memory holding all of the above, freed by disposeWeights. */
  params: LoadedParameters;
}

export function uploadWeights(ckpt: Checkpoint, opts: UploadOptions = {}): DeviceWeights {
  const c = ckpt.config;
  const layers = Array.from({ length: c.nLayer }, (_, i) => i);
  const linears: LinearSpec[] = [
    { weight: WTE, inDim: c.dModel, outDim: c.dVocab, stored: 'out-in', norms: 'cols' }, // [d_vocab, d_model] is W_Uᵀ; ‖E_i‖
    ...layers.flatMap((i) => blockMatrices(c, i).map((m, j): LinearSpec => ({
      weight: m.name + '.weight', bias: m.name + '.bias', inDim: m.inDim, outDim: m.outDim, stored: 'in-out', gelu: j === 2,
      ...(j === 3 ? { norms: 'rows' as const } : {}), // ‖FF value j‖
    }))),
  ];
  const norm = (n: string): TensorSpec[] => [{ name: n + '.weight', shape: [c.dModel] }, { name: n + '.bias', shape: [c.dModel] }];
  const tensors: TensorSpec[] = [
    ...layers.flatMap((i) => [...norm(blockNorms(i).ln1), ...norm(blockNorms(i).ln2)]),
    { name: WPE, shape: [c.nCtx, c.dModel] },
    ...norm(LN_F),
  ];
  const params = loadParameters(ckpt, { linears, tensors }, opts);
  const l = params.linears, t = params.tensors;
  const blocks = layers.map((i): BlockWeights => {
    const [qkv, o, fc, proj] = l.slice(1 + 4 * i, 5 + 4 * i);
    const [ln1w, ln1b, ln2w, ln2b] = t.slice(4 * i, 4 * i + 4) as tfc.Tensor1D[];
    return { ln1w, ln1b, qkv, o, ln2w, ln2b, fc, proj };
  });
  const [wpe, lnfw, lnfb] = t.slice(4 * c.nLayer) as [tfc.Tensor2D, tfc.Tensor1D, tfc.Tensor1D];
  return { unembed: l[0], wpe, blocks, lnfw, lnfb, params };
}

export function disposeWeights(w: DeviceWeights): void {
  w.params.dispose();
}
