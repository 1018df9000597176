/**
 * Multithreaded XNNPACK for the wasm backend under Node.
 *
 * tfjs-backend-wasm 4.22 ships a threaded SIMD build but reports "no multithread support" in Node
 * (tensorflow/tfjs#3830): its Emscripten pthread workers are started from blob: URLs, which Node's
 * worker_threads cannot load, and the pool size is capped at os.cpus().length / 2 (it assumes
 * hyper-threading), i.e. one thread on a 2-core machine. We make both work:
 *  - worker_threads.Worker learns to start the worker script when given the blob: URL (we evaluate
 *    the same script text tfjs would have put in the blob, pointing it at the glue file on disk);
 *  - during backend initialisation only, os.cpus() reports 2× the cores so the cap is the real
 *    core count; `threads` is then passed to tfjs' setThreadsCount.
 * Everything is version-specific (the package is pinned): if any assumption fails we return false
 * and the caller initialises the single-threaded build instead.
 *
 * Opt-in ($SP_WASM_THREADS): decode steps are memory-bandwidth bound and one core cannot saturate
 * the memory bus, but the pool's threads must all be scheduled at every op, which on a busy 2-core
 * machine costs far more than it gains (measurements in docs/performance.md).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';

const require = createRequire(import.meta.url);

/** Prepare the threaded build; call before tf.setBackend('wasm'). Returns a restore function for os.cpus, or undefined when unsupported. */
export function prepareWasmThreads(threads: number): (() => void) | undefined {
  if (threads <= 1) return undefined;
  try {
    const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
    const glue = path.join(wasmDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
    const { wasmWorkerContents } = require(path.join(wasmDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents?: string };
    const loadMain = 'if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}';
    if (typeof wasmWorkerContents !== 'string' || !wasmWorkerContents.includes(loadMain)) return undefined;
    // The template literal turned the script's "\n" escapes into newlines; tfjs re-escapes them too.
    const workerCode = wasmWorkerContents.replace(/\n/g, '\\n').replace(loadMain, `if(true){importScripts(${JSON.stringify(glue)})}`);

    const wt = require('node:worker_threads') as typeof import('node:worker_threads') & { __spPatched?: boolean };
    if (!wt.__spPatched) {
      const Base = wt.Worker;
      class BlobAwareWorker extends Base {
        constructor(file: string | URL, opts?: import('node:worker_threads').WorkerOptions) {
          if (typeof file === 'string' && file.startsWith('blob:')) super(workerCode, { ...opts, eval: true });
          else super(file, opts);
        }
      }
      wt.Worker = BlobAwareWorker;
      wt.__spPatched = true;
    }

    const os = require('node:os') as typeof import('node:os');
    const cpus = os.cpus;
    os.cpus = () => {
      const c = cpus();
      return [...c, ...c];
    };
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
    wasm.setThreadsCount(threads);
    return () => {
      os.cpus = cpus;
    };
  } catch {
    return undefined;
  }
}

/** Go back to the single-threaded build (after a failed threaded start). */
export function disableWasmThreads(): void {
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
}

/**
 * XNNPACK's pool threads block in a futex wait between ops, and Emscripten keeps their Node workers
 * referenced while they run, so the process would never exit on its own. Unreference them: they
 * only ever work while the main thread waits for them, so nothing is lost when the process ends.
 */
export function unrefWasmWorkers(): void {
  try {
    const backend = tf.backend() as unknown as { wasm?: { PThread?: { runningWorkers?: Array<{ unref?: () => void }>; unusedWorkers?: Array<{ unref?: () => void }> } } };
    const pt = backend.wasm?.PThread;
    for (const w of [...(pt?.runningWorkers ?? []), ...(pt?.unusedWorkers ?? [])]) w.unref?.();
  } catch {
    /* not the threaded build */
  }
}
