/**
 * The matrix engines every fidelity test runs on: onnxruntime (the default on wasm/cpu when
 * onnxruntime-node is installed, as it is in this repo), sp's packed wasm kernel and tfjs' matmuls.
 */
export const ENGINES = ['ort', 'wasm', 'tfjs'] as const;
export type EngineName = (typeof ENGINES)[number];

/** Runs `fn` (a model load) with $SP_ENGINE = `engine`, restoring the variable after. */
export async function withEngine<T>(engine: EngineName, fn: () => Promise<T>): Promise<T> {
  const prev = process.env.SP_ENGINE;
  process.env.SP_ENGINE = engine;
  try {
    return await fn();
  } finally {
    if (prev === undefined) delete process.env.SP_ENGINE;
    else process.env.SP_ENGINE = prev;
  }
}
