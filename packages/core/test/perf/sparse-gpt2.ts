/** A GPT-2-shaped checkpoint written sparse (all weights 0, no disk used): large matrices at no cost to write. */
import fs from 'node:fs';
import path from 'node:path';
import { writeSparseSafetensors, type SparseFile, type SparseTensor } from '../helpers/sparse-safetensors.js';

export function writeSparseGpt2(dir: string, s: { nLayer: number; dModel: number; nCtx?: number; vocab?: number }): SparseFile {
  const d = s.dModel, V = s.vocab ?? 50257, ctx = s.nCtx ?? 1024;
  const t: SparseTensor[] = [{ name: 'wte.weight', shape: [V, d] }, { name: 'wpe.weight', shape: [ctx, d] }];
  for (let i = 0; i < s.nLayer; i++) {
    const p = `h.${i}.`;
    t.push(
      { name: p + 'ln_1.weight', shape: [d] }, { name: p + 'ln_1.bias', shape: [d] },
      { name: p + 'attn.c_attn.weight', shape: [d, 3 * d] }, { name: p + 'attn.c_attn.bias', shape: [3 * d] },
      { name: p + 'attn.c_proj.weight', shape: [d, d] }, { name: p + 'attn.c_proj.bias', shape: [d] },
      { name: p + 'ln_2.weight', shape: [d] }, { name: p + 'ln_2.bias', shape: [d] },
      { name: p + 'mlp.c_fc.weight', shape: [d, 4 * d] }, { name: p + 'mlp.c_fc.bias', shape: [4 * d] },
      { name: p + 'mlp.c_proj.weight', shape: [4 * d, d] }, { name: p + 'mlp.c_proj.bias', shape: [d] },
    );
  }
  t.push({ name: 'ln_f.weight', shape: [d] }, { name: 'ln_f.bias', shape: [d] });
  fs.mkdirSync(dir, { recursive: true });
  return writeSparseSafetensors(path.join(dir, 'model.safetensors'), t);
}
