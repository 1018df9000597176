/**
 * Random GPT-2-shaped checkpoints for speed measurements: real HF tensor names and config.json,
 * F32, written once into bench/.weights/<preset>/ (gitignored) with the library's writeSafetensors.
 * The values are random (speed does not depend on them), scaled like GPT-2's init so activations
 * stay finite and no denormals slow the arithmetic.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeConfig, PRESETS, writeSafetensors, type GPT2Config, type TensorToWrite } from '@sp/core';
import { benchRoot } from './paths.js';

export type BenchPreset = 'gpt2' | 'gpt2-medium' | 'gpt2-large' | 'gpt2-xl';

export function presetConfig(name: BenchPreset): GPT2Config {
  return makeConfig(PRESETS[name]);
}

/** xorshift32 filling a Float32Array with uniform values of the given std (fast: ~1 ns/value). */
function fillUniform(out: Float32Array, seed: number, std: number, mean = 0): Float32Array {
  let x = seed >>> 0 || 1;
  const a = std * Math.sqrt(3) * 2; // uniform on [-a/2, a/2) has std a/sqrt(12)
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = mean + ((x >>> 0) / 4294967296 - 0.5) * a;
  }
  return out;
}

/** The tensors of an HF GPT-2 `model.safetensors` (including the attn.bias mask buffers HF stores). */
export function randomTensors(c: GPT2Config, seed = 1): TensorToWrite[] {
  let s = seed;
  const t = (name: string, shape: number[], std: number, mean = 0): TensorToWrite => ({
    name,
    shape,
    data: fillUniform(new Float32Array(shape.reduce((a, b) => a * b, 1)), (s = (s * 1664525 + 1013904223) >>> 0), std, mean),
  });
  const out: TensorToWrite[] = [t('wte.weight', [c.dVocab, c.dModel], 0.1), t('wpe.weight', [c.nCtx, c.dModel], 0.01)];
  const mask = new Float32Array(c.nCtx * c.nCtx);
  for (let i = 0; i < c.nCtx; i++) mask.fill(1, i * c.nCtx, i * c.nCtx + i + 1);
  for (let i = 0; i < c.nLayer; i++) {
    const p = `h.${i}.`;
    out.push(
      t(p + 'ln_1.weight', [c.dModel], 0.05, 1), t(p + 'ln_1.bias', [c.dModel], 0.02),
      t(p + 'attn.c_attn.weight', [c.dModel, 3 * c.dModel], 0.02), t(p + 'attn.c_attn.bias', [3 * c.dModel], 0.02),
      t(p + 'attn.c_proj.weight', [c.dModel, c.dModel], 0.02), t(p + 'attn.c_proj.bias', [c.dModel], 0.02),
      t(p + 'ln_2.weight', [c.dModel], 0.05, 1), t(p + 'ln_2.bias', [c.dModel], 0.02),
      t(p + 'mlp.c_fc.weight', [c.dModel, c.dMlp], 0.02), t(p + 'mlp.c_fc.bias', [c.dMlp], 0.02),
      t(p + 'mlp.c_proj.weight', [c.dMlp, c.dModel], 0.02), t(p + 'mlp.c_proj.bias', [c.dModel], 0.02),
      { name: p + 'attn.bias', shape: [1, 1, c.nCtx, c.nCtx], data: mask },
    );
  }
  out.push(t('ln_f.weight', [c.dModel], 0.05, 1), t('ln_f.bias', [c.dModel], 0.02));
  return out;
}

export function weightsDir(name: BenchPreset): string {
  return path.join(benchRoot, '.weights', name);
}

/** Write the checkpoint unless it is already there (in `dir`, default bench/.weights/NAME); returns its directory. */
export function ensureCheckpoint(name: BenchPreset, log: (s: string) => void = () => {}, dir = weightsDir(name)): string {
  const st = path.join(dir, 'model.safetensors');
  if (fs.existsSync(st) && fs.existsSync(path.join(dir, 'config.json'))) return dir;
  const c = presetConfig(name);
  fs.mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const tensors = randomTensors(c);
  const tmp = st + '.tmp';
  writeSafetensors(tmp, tensors, { format: 'pt', note: 'random weights for benchmarks (@sp/bench)' });
  fs.renameSync(tmp, st);
  const config = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    activation_function: 'gelu_new',
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_embd: c.dModel,
    n_positions: c.nCtx,
    n_ctx: c.nCtx,
    vocab_size: c.dVocab,
    layer_norm_epsilon: c.layerNormEps,
    bos_token_id: 50256,
    eos_token_id: 50256,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  log(`wrote ${name} random checkpoint (${(fs.statSync(st).size / 1e6).toFixed(0)} MB) in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${dir}`);
  return dir;
}
