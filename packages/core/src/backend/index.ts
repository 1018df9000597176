/**
 * Picks the tfjs backend once per process: `tensorflow` (tfjs-node / tfjs-node-gpu) when the user
 * installed one, else `wasm` (SIMD; multithreaded XNNPACK with $SP_WASM_THREADS > 1), else `cpu`.
 * `SP_BACKEND` or `setBackend(name)` chooses explicitly.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { SpError } from '../errors.js';
import { disableWasmThreads, prepareWasmThreads, unrefWasmWorkers } from './wasm-threads.js';
import { registerChainedOps } from './chained-ops.js';

registerChainedOps();

export type BackendName = 'wasm' | 'cpu' | 'tensorflow';
const require = createRequire(import.meta.url);
let chosen: Promise<BackendName> | undefined;

async function tryNative(): Promise<boolean> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      return true;
    } catch {
      /* not installed: optional */
    }
  }
  return false;
}

async function activate(name: BackendName): Promise<void> {
  if (name === 'wasm') {
    setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')) + '/dist/');
    const restore = prepareWasmThreads(wasmThreadCount());
    if (restore) {
      try {
        if (await tf.setBackend('wasm')) {
          await tf.ready();
          unrefWasmWorkers();
          return;
        }
      } catch {
        /* fall back to the single-threaded build below */
      } finally {
        restore();
      }
      disableWasmThreads();
    }
  } else if (name === 'tensorflow' && !(await tryNative())) {
    throw new SpError('UNSUPPORTED', 'backend "tensorflow" needs @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu installed');
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new SpError('UNSUPPORTED', `backend "${name}" failed to initialise`);
  await tf.ready();
}

/** Initialise (once) and return the active backend name. */
export function initBackend(preferred?: string): Promise<BackendName> {
  const want = preferred ?? process.env.SP_BACKEND;
  if (chosen && !want) return chosen;
  if (chosen && want === tf.getBackend()) return chosen;
  chosen = (async () => {
    if (want) {
      if (want !== 'wasm' && want !== 'cpu' && want !== 'tensorflow') {
        throw new SpError('BAD_INPUT', `unknown backend "${want}" (use wasm, cpu or tensorflow)`);
      }
      await activate(want);
      return want;
    }
    if (await tryNative()) {
      try {
        await activate('tensorflow');
        return 'tensorflow';
      } catch {
        /* fall through */
      }
    }
    try {
      await activate('wasm');
      return 'wasm';
    } catch {
      await activate('cpu');
      return 'cpu';
    }
  })();
  return chosen;
}

/**
 * XNNPACK threads for the wasm backend: $SP_WASM_THREADS (at most one per core), else tfjs' own rule
 * (half the logical cores, at most 4), which it cannot apply in Node itself (wasm-threads.ts).
 * On a 2-core machine that is 1 thread: 2 threads make a decode step ~1.4× faster when the machine
 * is otherwise idle but 2-3× slower when anything else runs, because XNNPACK's pool waits for every
 * thread at every op (docs/performance.md). Set SP_WASM_THREADS=2 on an idle 2-core machine.
 */
function wasmThreadCount(): number {
  const cores = os.cpus().length;
  const env = Number(process.env.SP_WASM_THREADS);
  if (Number.isInteger(env) && env >= 1) return Math.min(env, cores);
  return Math.max(1, Math.min(4, Math.floor(cores / 2)));
}

export function backendName(): string {
  return tf.getBackend();
}

export { tf };

/** tf.tidy for any structure of tensors (objects with interfaces, not just TensorContainer). */
export function tidy<T>(fn: () => T): T {
  return tf.tidy(fn as () => tf.TensorContainer) as T;
}
