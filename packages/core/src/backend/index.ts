/**
 * Picks the tfjs backend once per process: `tensorflow` (tfjs-node / tfjs-node-gpu) when the user
 * installed one, else `wasm` (SIMD; multithreaded XNNPACK with $SP_WASM_THREADS > 1), else `cpu`.
 * `SP_BACKEND` or `initBackend(name)` (the `backend` option of `gpt2()`) chooses explicitly; `webgpu`
 * (a GPU through Dawn, webgpu.ts) is only ever chosen explicitly.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { SpError } from '../errors.js';
import { backendFromEnv, checkEnv, threadsFromEnv } from './env.js';
import { disableWasmThreads, prepareWasmThreads, unrefWasmWorkers } from './wasm-threads.js';
import { registerChainedOps } from './chained-ops.js';
import { registerGradients } from './gradients.js';
import { startWebgpu } from './webgpu.js';

registerChainedOps();
registerGradients(); // tf.grad through the model (tfjs-core's node bundle registers none)

export type BackendName = 'wasm' | 'cpu' | 'tensorflow' | 'webgpu';
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

/**
 * tfjs-backend-wasm's Emscripten glue adds process-wide 'uncaughtException' and 'unhandledRejection'
 * handlers that rethrow (so any later uncaught error in the user's program exits 7 with the glue's
 * source on stderr); its own clean-up of them is broken (tfjs 4.22). A library must not take over the
 * process's error handling: remove every such handler added while the backend started.
 */
const PROCESS_EVENTS: string[] = ['uncaughtException', 'unhandledRejection'];
async function withoutNewProcessHandlers<T>(fn: () => Promise<T>): Promise<T> {
  const emitter = process as unknown as NodeJS.EventEmitter; // the overloads do not take a union of events
  const before = PROCESS_EVENTS.map((e) => new Set(emitter.listeners(e)));
  try {
    return await fn();
  } finally {
    PROCESS_EVENTS.forEach((e, i) => {
      for (const l of emitter.listeners(e)) if (!before[i].has(l)) emitter.removeListener(e, l as (...a: unknown[]) => void);
    });
  }
}

async function activate(name: BackendName): Promise<void> {
  await withoutNewProcessHandlers(() => start(name));
  // tfjs' cpu backend prints a 4-line "install tfjs-node" banner at its first tensor; cpu is a
  // deliberate choice (or the fallback) here, and sp's matrix products do not run in it anyway.
  if (name === 'cpu') (tf.backend() as { firstUse?: boolean }).firstUse = false;
}

async function start(name: BackendName): Promise<void> {
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
  } else if (name === 'webgpu') {
    return startWebgpu();
  } else if (name === 'tensorflow' && !(await tryNative())) {
    throw new SpError('UNSUPPORTED', 'backend "tensorflow" needs @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu installed');
  }
  const ok = await tf.setBackend(name);
  if (!ok) throw new SpError('UNSUPPORTED', `backend "${name}" failed to initialise`);
  await tf.ready();
}

/** Initialise (once) and return the active backend name. */
export function initBackend(preferred?: string): Promise<BackendName> {
  // Invalid SP_* variables are refused here, before any work, rather than ignored (env.ts).
  let want: BackendName | undefined;
  try {
    checkEnv();
    want = backendFromEnv(preferred);
  } catch (e) {
    return Promise.reject(e);
  }
  if (chosen && !want) return chosen;
  if (chosen && want === tf.getBackend()) return chosen;
  chosen = (async () => {
    if (want) {
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
  const env = threadsFromEnv('SP_WASM_THREADS');
  if (env !== undefined) return Math.min(env, cores);
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
