/**
 * Random GPT-2 checkpoints written with the library's own writer, plus the float64 reference
 * weights that see exactly the same (dtype-rounded) values.
 *
 * The reference's view of the weights is decoded from the written bytes by the independent
 * safetensors-mini reader, so an F16/BF16 rounding bug in the writer and a decoding bug in the
 * library's reader cannot cancel out.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encodeSafetensors, type DType, type TensorToWrite } from '@sp/core';
import type { RefConfig, RefWeights } from '../reference/gpt2-ref.js';
import { randomRefWeights } from '../reference/random-model.js';
import { parseSafetensors } from '../reference/safetensors-mini.js';
import { tmpDir } from './fixtures.js';

export interface RandomGpt2Spec {
  nLayer: number;
  nHead: number;
  dModel: number;
  /** Default 32. */
  nCtx?: number;
  /** Default 50257 (the bundled GPT-2 tokenizer needs exactly that). */
  vocab?: number;
  /** Storage dtype of the parameters (buffers are always F32). Default F32. */
  dtype?: DType;
  /** Store names as `transformer.h.0...` (HF GPT2LMHeadModel) instead of `h.0...`. */
  prefix?: boolean;
  /** Write config.json (default true); without it the library must infer the config from shapes. */
  config?: boolean;
  /** Also store HF's non-parameter buffers `h.{i}.attn.bias` [1,1,n_ctx,n_ctx], `h.{i}.attn.masked_bias` [] and a tied `lm_head.weight`. */
  buffers?: boolean;
  seed?: number;
}

export interface RandomGpt2 {
  dir: string;
  spec: Required<RandomGpt2Spec>;
  /** The reference weights as stored in the file (F16/BF16 rounded), canonical names. */
  ref: RefWeights;
  /** File names actually written (with prefix). */
  names: string[];
}

export function specLabel(s: RandomGpt2Spec): string {
  const parts = [`L${s.nLayer} d${s.dModel} h${s.nHead}`, `ctx${s.nCtx ?? 32}`, s.dtype ?? 'F32'];
  if (s.prefix) parts.push('prefixed');
  if (s.config === false) parts.push('no-config');
  if (s.buffers) parts.push('buffers');
  return parts.join(' ');
}

/** Write a random GPT-2 directory (model.safetensors [+ config.json]) under `dir` (default: a new tmp dir). */
export function writeRandomGpt2(spec: RandomGpt2Spec, dir = tmpDir('sp-rand-gpt2-')): RandomGpt2 {
  const s: Required<RandomGpt2Spec> = { nCtx: 32, vocab: 50257, dtype: 'F32', prefix: false, config: true, buffers: false, seed: 1234, ...spec };
  const cfg: RefConfig = { nLayer: s.nLayer, nHead: s.nHead, dModel: s.dModel, nCtx: s.nCtx, vocabSize: s.vocab, eps: 1e-5 };
  const w = randomRefWeights(cfg, s.seed);
  const pre = s.prefix ? 'transformer.' : '';
  const tensors: TensorToWrite[] = w.tensors().map((t) => ({ name: pre + t.name, shape: t.shape, data: t.data, dtype: s.dtype }));
  if (s.buffers) {
    const tril = new Float32Array(s.nCtx * s.nCtx);
    for (let i = 0; i < s.nCtx; i++) for (let j = 0; j <= i; j++) tril[i * s.nCtx + j] = 1;
    for (let l = 0; l < s.nLayer; l++) {
      tensors.push({ name: `${pre}h.${l}.attn.bias`, shape: [1, 1, s.nCtx, s.nCtx], data: tril, dtype: 'F32' });
      tensors.push({ name: `${pre}h.${l}.attn.masked_bias`, shape: [], data: [-1e4], dtype: 'F32' });
    }
    tensors.push({ name: 'lm_head.weight', shape: [s.vocab, s.dModel], data: w.get('wte.weight'), dtype: s.dtype });
  }
  const bytes = encodeSafetensors(tensors, { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'model.safetensors'), bytes);
  if (s.config) {
    const json = { model_type: 'gpt2', n_layer: s.nLayer, n_head: s.nHead, n_embd: s.dModel, n_positions: s.nCtx, n_ctx: s.nCtx, vocab_size: s.vocab, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' };
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(json));
  }
  // What the file holds, decoded independently of the library.
  const parsed = parseSafetensors(bytes);
  const ref: RefWeights = {
    config: cfg,
    get: (name: string) => parsed.get(pre + name).data,
  };
  return { dir, spec: s, ref, names: tensors.map((t) => t.name) };
}

/** Deterministic pseudo-random token ids in [0, vocab). */
export function randomIds(n: number, seed: number, vocab = 50257): number[] {
  let a = seed >>> 0;
  return Array.from({ length: n }, () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a % vocab;
  });
}
