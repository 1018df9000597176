/** Facts about the process sp runs in, shared by the file readers (weights/) and the engines (backend/). */

/** Whether this process stores numbers little-endian, as safetensors files (and the wasm heap) do. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Source text of `main` for an eval'd worker thread, run after `prelude`. Loaders that keep function
 * names (tsx / esbuild's keepNames) wrap inner functions in `__name(fn, "name")`, a helper the worker
 * would not have: it gets an identity one.
 */
export const workerSource = (main: () => void, prelude = ''): string => `const __name = (f) => f;\n${prelude}(${main.toString()})()`;
