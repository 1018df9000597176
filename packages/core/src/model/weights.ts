/** Model parameters uploaded to the tfjs backend once, in the layouts the forward pass wants. */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../backend/index.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { GPT2Config } from './config.js';

export interface BlockWeights {
  ln1w: tfc.Tensor1D; ln1b: tfc.Tensor1D;
  wqkv: tfc.Tensor2D; bqkv: tfc.Tensor1D; // [d_model, 3*d_model], columns q|k|v
  wo: tfc.Tensor2D; bo: tfc.Tensor1D; //     [d_model, d_model]
  ln2w: tfc.Tensor1D; ln2b: tfc.Tensor1D;
  wfc: tfc.Tensor2D; bfc: tfc.Tensor1D; //   [d_model, d_mlp]  (FF keys are its columns)
  wproj: tfc.Tensor2D; bproj: tfc.Tensor1D; // [d_mlp, d_model] (FF values are its rows)
}

export interface DeviceWeights {
  /** Token embedding stored transposed, [d_model, d_vocab]: the unembedding (tied) is then a plain x @ W, several times faster on wasm than x @ Wᵀ. */
  wteT: tfc.Tensor2D;
  wpe: tfc.Tensor2D; // [n_ctx, d_model]
  blocks: BlockWeights[];
  lnfw: tfc.Tensor1D; lnfb: tfc.Tensor1D;
}

export function uploadWeights(ckpt: Checkpoint): DeviceWeights {
  const c: GPT2Config = ckpt.config;
  const t1 = (n: string) => tf.tensor1d(ckpt.read(n));
  const t2 = (n: string, r: number, k: number) => tf.tensor2d(ckpt.read(n), [r, k]);
  const wte = t2('wte.weight', c.dVocab, c.dModel);
  const wteT = tf.transpose(wte) as tfc.Tensor2D;
  wte.dispose();
  const blocks: BlockWeights[] = [];
  for (let i = 0; i < c.nLayer; i++) {
    const p = `h.${i}.`;
    blocks.push({
      ln1w: t1(p + 'ln_1.weight'), ln1b: t1(p + 'ln_1.bias'),
      wqkv: t2(p + 'attn.c_attn.weight', c.dModel, 3 * c.dModel), bqkv: t1(p + 'attn.c_attn.bias'),
      wo: t2(p + 'attn.c_proj.weight', c.dModel, c.dModel), bo: t1(p + 'attn.c_proj.bias'),
      ln2w: t1(p + 'ln_2.weight'), ln2b: t1(p + 'ln_2.bias'),
      wfc: t2(p + 'mlp.c_fc.weight', c.dModel, c.dMlp), bfc: t1(p + 'mlp.c_fc.bias'),
      wproj: t2(p + 'mlp.c_proj.weight', c.dMlp, c.dModel), bproj: t1(p + 'mlp.c_proj.bias'),
    });
  }
  return { wteT, wpe: t2('wpe.weight', c.nCtx, c.dModel), blocks, lnfw: t1('ln_f.weight'), lnfb: t1('ln_f.bias') };
}

export function disposeWeights(w: DeviceWeights): void {
  tf.dispose([w.wteT, w.wpe, w.lnfw, w.lnfb, ...w.blocks.flatMap((b) => Object.values(b))]);
}
