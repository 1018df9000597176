/**
 * Picks the tfjs backend once per process: `tensorflow` (tfjs-node / tfjs-node-gpu) when the user
 * installed one, else `wasm` (SIMD; threads where the runtime allows), else `cpu`.
 * `SP_BACKEND` or `setBackend(name)` chooses explicitly.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import path from 'node:path';
import { SpError } from '../errors.js';
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

export function backendName(): string {
  return tf.getBackend();
}

export { tf };

/** tf.tidy for any structure of tensors (objects with interfaces, not just TensorContainer). */
export function tidy<T>(fn: () => T): T {
  return tf.tidy(fn as () => tf.TensorContainer) as T;
}
