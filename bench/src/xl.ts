/**
 * What the wasm backend can hold. Arithmetic on the presets' parameter counts plus a quick
 * allocation test: grow tfjs' wasm heap in 256 MB tensors (allocated, never written, so the OS
 * commits no memory) until it refuses. wasm32 addresses at most 4 GiB, and XNNPACK keeps a packed
 * copy of every weight matrix once it has multiplied by it, so a model needs ~2× its fp32 bytes.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { benchRoot } from './paths.js';
import { presetConfig, type BenchPreset } from './weights.js';

export interface XlAnalysis {
  /** Largest total the wasm heap accepted in the allocation test, GB (1e9 bytes). */
  wasmHeapMaxGB: number | null;
  presets: Array<{ model: BenchPreset; params: number; fp32GB: number; withPackedCopyGB: number; fitsWasm: boolean }>;
  summary: string;
}

export function paramCount(name: BenchPreset): number {
  const c = presetConfig(name);
  const { dModel: d, dMlp: m } = c;
  const perLayer = 4 * d + d * 3 * d + 3 * d + d * d + d + d * m + m + m * d + d;
  return c.dVocab * d + c.nCtx * d + c.nLayer * perLayer + 2 * d;
}

function allocationTest(): number | null {
  try {
    const out = execFileSync(process.execPath, ['--no-warnings', path.join(benchRoot, 'dist', 'xl-alloc-child.js')], {
      env: { ...process.env, SP_WASM_THREADS: '1' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    return (JSON.parse(out.trim().split('\n').pop()!) as { maxGB: number }).maxGB;
  } catch {
    return null;
  }
}

export function xlAnalysis(): XlAnalysis {
  const max = allocationTest();
  const limit = max ?? 4.29;
  const presets = (['gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl'] as BenchPreset[]).map((model) => {
    const params = paramCount(model);
    const fp32GB = (params * 4) / 1e9;
    // Matrices (nearly all bytes) get a packed XNNPACK copy; activations and the KV cache need headroom too.
    const withPackedCopyGB = 2 * fp32GB;
    return { model, params, fp32GB, withPackedCopyGB, fitsWasm: withPackedCopyGB + 0.3 < limit };
  });
  const xl = presets.find((p) => p.model === 'gpt2-xl')!;
  const fit = presets.filter((p) => p.fitsWasm).map((p) => p.model);
  const summary =
    `${(xl.params / 1e9).toFixed(2)} B parameters = ${xl.fp32GB.toFixed(1)} GB in fp32 (${xl.withPackedCopyGB.toFixed(1)} GB with XNNPACK's packed copy), ` +
    `but the wasm backend's heap stops at ${max === null ? '4.29 GB (wasm32 limit; allocation test did not run)' : `${max.toFixed(2)} GB (allocation test)`}: ` +
    `gpt2-xl cannot run on wasm (it fits: ${fit.join(', ')}). Use the native backend instead: ` +
    '`npm i @tensorflow/tfjs-node` (or tfjs-node-gpu) and `SP_BACKEND=tensorflow` / `--backend tensorflow`, which keeps weights in 64-bit native memory; ' +
    'fp16 weight storage (halving the bytes) is a possible future option, not available today.';
  return { wasmHeapMaxGB: max, presets, summary };
}
