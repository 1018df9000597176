import { tf } from '@sp/core';
import { engineName, gemmThreads } from '@sp/core/internals';

/** Who runs the matrix products, and on how many threads (run after the model is loaded). */
export function matmulEngine(): { matmul: 'ort' | 'sp' | 'xnnpack' | 'tfjs'; threads: number } {
  const e = engineName();
  if (e === 'ort') return { matmul: 'ort', threads: gemmThreads() };
  if (e === 'wasm') return { matmul: 'sp', threads: gemmThreads() };
  if (tf.getBackend() !== 'wasm') return { matmul: 'tfjs', threads: 1 };
  const b = tf.backend() as unknown as { wasm?: { tfjs?: { getThreadsCount?: () => number } } };
  return { matmul: 'xnnpack', threads: b.wasm?.tfjs?.getThreadsCount?.() ?? 1 };
}

/** Table label of a configuration: "wasm (sp kernel, 2 threads)", "wasm (XNNPACK, 1 thread)", "cpu (sp kernel, …)". */
export function engineLabel(backend: string, e: { matmul: string; threads: number }): string {
  const who = e.matmul === 'ort' ? 'onnxruntime MLAS' : e.matmul === 'sp' ? 'sp kernel' : e.matmul === 'xnnpack' ? 'XNNPACK' : 'tfjs matmul';
  return `${backend} (${who}, ${e.threads} thread${e.threads > 1 ? 's' : ''})`;
}
