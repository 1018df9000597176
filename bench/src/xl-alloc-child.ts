/**
 * How much the wasm backend's heap can hold: allocate float32 tensors of 256 MB (through the
 * backend, never written, so no memory is committed) until the heap refuses to grow.
 */
import { initBackend, tf } from '@sp/core';

await initBackend('wasm');
const CHUNK = 64 << 20; // floats = 256 MiB
const held: tf.Tensor[] = [];
let bytes = 0;
try {
  for (let i = 0; i < 64; i++) {
    // tf.zeros would write every byte (committing RAM); an uninitialised backend buffer does not.
    const be = tf.backend() as unknown as {
      makeOutput(s: number[], d: string): { dataId: object; shape: number[]; dtype: 'float32' };
      dataIdMap: { get(id: object): { memoryOffset: number } };
    };
    const info = be.makeOutput([CHUNK], 'float32');
    held.push(tf.engine().makeTensorFromTensorInfo(info));
    if (!be.dataIdMap.get(info.dataId).memoryOffset) break; // malloc returned NULL: heap full
    bytes += CHUNK * 4;
  }
} catch {
  /* heap full */
}
tf.dispose(held);
process.stdout.write(JSON.stringify({ maxGB: bytes / 1e9 }) + '\n');
