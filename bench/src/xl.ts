/**
 * What the default (wasm) backend can hold. sp keeps the weight matrices in its own arenas — wasm32
 * memories of up to 4 GiB each, as many as a model needs — not in tfjs' single 4 GiB heap, and no
 * second (XNNPACK-packed) copy is made. So every GPT-2 size loads; the bench proves it for gpt2-xl
 * by loading a random checkpoint of its real shapes and decoding (only when that 6.4 GB checkpoint
 * exists, or `--xl` asks for it to be written).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { arenaCapacity } from '@sp/core/internals';
import { benchRoot } from './paths.js';
import { ensureCheckpoint, presetConfig, weightsDir, type BenchPreset } from './weights.js';

export interface XlRun {
  backend: string;
  weightBytes: number;
  arenas: number;
  loadMs: number;
  peakRssReadyMB: number;
  decodeTokensPerS: number;
  peakRssMB: number;
}

export interface XlAnalysis {
  presets: Array<{ model: BenchPreset; params: number; fp32GB: number; arenas: number }>;
  run: XlRun | { skipped: string };
  summary: string;
}

export function paramCount(name: BenchPreset): number {
  const c = presetConfig(name);
  const { dModel: d, dMlp: m } = c;
  const perLayer = 4 * d + d * 3 * d + 3 * d + d * d + d + d * m + m + m * d + d;
  return c.dVocab * d + c.nCtx * d + c.nLayer * perLayer + 2 * d;
}

function runXl(write: boolean, log: (s: string) => void): XlRun | { skipped: string } {
  const dir = weightsDir('gpt2-xl');
  if (!write && !fs.existsSync(path.join(dir, 'model.safetensors'))) return { skipped: 'no bench/.weights/gpt2-xl checkpoint (pass --xl to write one: 6.4 GB)' };
  try {
    ensureCheckpoint('gpt2-xl', log);
    const out = execFileSync(process.execPath, ['--no-warnings', path.join(benchRoot, 'dist', 'xl-child.js'), dir, '8'], { encoding: 'utf8', timeout: 600_000 });
    return JSON.parse(out.trim().split('\n').pop()!) as XlRun;
  } catch (e) {
    return { skipped: `failed: ${String((e as Error).message).split('\n')[0]}` };
  }
}

export function xlAnalysis(opts: { write: boolean; log: (s: string) => void }): XlAnalysis {
  const cap = arenaCapacity();
  const presets = (['gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl'] as BenchPreset[]).map((model) => {
    const params = paramCount(model);
    return { model, params, fp32GB: (params * 4) / 1e9, arenas: Math.ceil((params * 4) / cap) };
  });
  const run = runXl(opts.write, opts.log);
  const xl = presets.find((p) => p.model === 'gpt2-xl')!;
  const ran =
    'skipped' in run
      ? `not run here (${run.skipped})`
      : `measured: loads in ${(run.loadMs / 1000).toFixed(1)} s into ${run.arenas} arenas, peak RSS ${(run.peakRssMB / 1024).toFixed(1)} GiB, greedy decode ${run.decodeTokensPerS.toFixed(2)} tok/s`;
  const summary =
    `${(xl.params / 1e9).toFixed(2)} B parameters = ${xl.fp32GB.toFixed(1)} GB in fp32. A wasm32 memory addresses 4 GiB, so sp spreads the weight matrices over ` +
    `${xl.arenas} arenas of at most ${(cap / 2 ** 30).toFixed(2)} GiB (gpt2: ${presets[0].arenas}, medium: ${presets[1].arenas}, large: ${presets[2].arenas}); tfjs' own heap only holds ` +
    `LayerNorm parameters, position embeddings and activations. gpt2-xl therefore runs on the default wasm backend given ~7 GB of free RAM — ${ran}. ` +
    'The native backend (`npm i @tensorflow/tfjs-node`, `--backend tensorflow`) remains the choice for a GPU.';
  return { presets, run, summary };
}
