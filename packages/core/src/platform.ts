/** Facts about the process sp runs in, shared by the file readers (weights/) and the engines (backend/). */

/** Whether this process stores numbers little-endian, as safetensors files (and the wasm heap) do. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
