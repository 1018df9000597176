import { tf } from '@sp/core';

/** XNNPACK threads of the wasm backend (1 on other backends). */
export function wasmThreads(): number {
  if (tf.getBackend() !== 'wasm') return 1;
  const b = tf.backend() as unknown as { wasm?: { tfjs?: { getThreadsCount?: () => number } } };
  return b.wasm?.tfjs?.getThreadsCount?.() ?? 1;
}
