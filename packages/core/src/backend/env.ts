/**
 * The environment variables sp reads, and the one rule for them: a variable that is set must hold a
 * valid value, or it is a one-line SpError (never silently ignored). `--threads` in the CLI goes
 * through the same parser, so the flag and the variable accept exactly the same values.
 * An empty variable counts as unset.
 */
import { SpError } from '../errors.js';

/** Threads sp's matrix kernel (and XNNPACK) can use: the caller plus at most 63 workers. */
export const MAX_THREADS = 64;

/** `name` = "--threads" or "SP_THREADS" etc.: an integer 1..MAX_THREADS, else a one-line SpError. */
export function parseThreads(name: string, value: string): number {
  const v = value.trim();
  if (!/^[0-9]+$/.test(v) || Number(v) < 1 || Number(v) > MAX_THREADS) {
    throw new SpError('BAD_INPUT', `${name} must be an integer from 1 to ${MAX_THREADS} (got "${value}")`);
  }
  return Number(v);
}

const parsed = new Map<string, number>(); // gemmThreads reads $SP_THREADS at every matmul

/** $SP_THREADS / $SP_WASM_THREADS as a number, undefined when unset. */
export function threadsFromEnv(name: 'SP_THREADS' | 'SP_WASM_THREADS'): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const key = `${name}=${raw}`;
  let n = parsed.get(key);
  if (n === undefined) parsed.set(key, (n = parseThreads(name, raw)));
  return n;
}

export const BACKENDS = ['wasm', 'cpu', 'tensorflow', 'webgpu'] as const;

/** $SP_BACKEND (or an explicit choice): wasm | cpu | tensorflow | webgpu, undefined when unset. */
export function backendFromEnv(preferred?: string): (typeof BACKENDS)[number] | undefined {
  const fromEnv = preferred === undefined;
  const want = preferred ?? process.env.SP_BACKEND;
  if (want === undefined || (fromEnv && want === '')) return undefined;
  if (!(BACKENDS as readonly string[]).includes(want)) {
    throw new SpError('BAD_INPUT', `${fromEnv ? 'SP_BACKEND' : 'backend'} must be wasm, cpu, tensorflow or webgpu (got "${want}")`);
  }
  return want as (typeof BACKENDS)[number];
}

/** $SP_MATMUL: `sp` (sp's kernel, the default on wasm/cpu) or `tfjs` (tfjs' own matmuls); undefined when unset. */
export function matmulFromEnv(): 'sp' | 'tfjs' | undefined {
  const v = process.env.SP_MATMUL;
  if (v === undefined || v === '') return undefined;
  if (v !== 'sp' && v !== 'tfjs') throw new SpError('BAD_INPUT', `SP_MATMUL must be sp or tfjs (got "${v}")`);
  return v;
}

export const ENGINES = ['ort', 'wasm', 'tfjs'] as const;
export type EngineChoice = (typeof ENGINES)[number];

/** `name` = "--engine" or "SP_ENGINE": ort | wasm | tfjs, else a one-line SpError. */
export function parseEngine(name: string, value: string): EngineChoice {
  if (!(ENGINES as readonly string[]).includes(value)) throw new SpError('BAD_INPUT', `${name} must be ort, wasm or tfjs (got "${value}")`);
  return value as EngineChoice;
}

/**
 * $SP_ENGINE (`--engine` sets it): the matrix engine. ort = onnxruntime-node, wasm = sp's packed
 * SIMD kernel, tfjs = tfjs' own matmuls; undefined when unset (the best available).
 */
export function engineFromEnv(): EngineChoice | undefined {
  const v = process.env.SP_ENGINE;
  return v === undefined || v === '' ? undefined : parseEngine('SP_ENGINE', v);
}

/**
 * $SP_RELAXED_SIMD: 0 keeps sp's wasm kernel on plain SIMD (bit for bit as before) where relaxed
 * SIMD's FMA is available; 1 or unset: the FMA kernel when the runtime validates it.
 */
export function relaxedSimdFromEnv(): boolean {
  const v = process.env.SP_RELAXED_SIMD;
  if (v === undefined || v === '' || v === '1') return true;
  if (v === '0') return false;
  throw new SpError('BAD_INPUT', `SP_RELAXED_SIMD must be 0 or 1 (got "${v}")`);
}

/** Check every variable at once (the CLI calls this before any command; model loading does too). */
export function checkEnv(): void {
  backendFromEnv();
  threadsFromEnv('SP_THREADS');
  threadsFromEnv('SP_WASM_THREADS');
  matmulFromEnv();
  engineFromEnv();
  relaxedSimdFromEnv();
}
