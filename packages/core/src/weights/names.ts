/**
 * GPT-2's parameters as Hugging Face names them (canonical names: without the `transformer.`
 * prefix), with their shapes for a config: the one table that checkpoint validation and the model's
 * parameter list both read.
 */
import type { GPT2Config } from '../config.js';

export const WTE = 'wte.weight'; //    [d_vocab, d_model]; also the tied unembedding (lm_head.weight)
export const WPE = 'wpe.weight'; //    [n_ctx, d_model]
export const LN_F = 'ln_f'; //         .weight / .bias [d_model]

/** A Conv1D layer: y = x @ W + b, `${name}.weight` [inDim, outDim] and `${name}.bias` [outDim]. */
export interface Conv1DName {
  name: string;
  inDim: number;
  outDim: number;
}

/** The LayerNorms of block `i`: `${ln_1}.weight` / `.bias` etc., each [d_model]. */
export function blockNorms(i: number): { ln1: string; ln2: string } {
  return { ln1: `h.${i}.ln_1`, ln2: `h.${i}.ln_2` };
}

/** Block `i`'s matrices, in the order the block uses them: c_attn (q|k|v), attn.c_proj, c_fc, mlp.c_proj. */
export function blockMatrices(c: GPT2Config, i: number): [qkv: Conv1DName, o: Conv1DName, fc: Conv1DName, proj: Conv1DName] {
  const p = `h.${i}.`;
  return [
    { name: p + 'attn.c_attn', inDim: c.dModel, outDim: 3 * c.dModel },
    { name: p + 'attn.c_proj', inDim: c.dModel, outDim: c.dModel },
    { name: p + 'mlp.c_fc', inDim: c.dModel, outDim: c.dMlp },
    { name: p + 'mlp.c_proj', inDim: c.dMlp, outDim: c.dModel },
  ];
}

/** Every parameter a GPT-2 checkpoint with config `c` must hold, and its shape. */
export function requiredTensorShapes(c: GPT2Config): Map<string, number[]> {
  const m = new Map<string, number[]>([
    [WTE, [c.dVocab, c.dModel]],
    [WPE, [c.nCtx, c.dModel]],
    [LN_F + '.weight', [c.dModel]],
    [LN_F + '.bias', [c.dModel]],
  ]);
  for (let i = 0; i < c.nLayer; i++) {
    const { ln1, ln2 } = blockNorms(i);
    const [qkv, o, fc, proj] = blockMatrices(c, i);
    m.set(ln1 + '.weight', [c.dModel]).set(ln1 + '.bias', [c.dModel]);
    for (const l of [qkv, o]) m.set(l.name + '.weight', [l.inDim, l.outDim]).set(l.name + '.bias', [l.outDim]);
    m.set(ln2 + '.weight', [c.dModel]).set(ln2 + '.bias', [c.dModel]);
    for (const l of [fc, proj]) m.set(l.name + '.weight', [l.inDim, l.outDim]).set(l.name + '.bias', [l.outDim]);
  }
  return m;
}
