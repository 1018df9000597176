/**
 * What `sp neuron` costs when the command imports only `@sp/core/light` (no TensorFlow.js):
 * the same reads and JSON output. `node neuron-light-child.js <dir> <layer> <index>`.
 */
import { openCheckpoint } from '@sp/core/light';

const [dir, layer, index] = process.argv.slice(2);
const ckpt = await openCheckpoint(dir, { download: false });
const key = Array.from(ckpt.ffKey(Number(layer), Number(index)));
const value = Array.from(ckpt.ffValue(Number(layer), Number(index)));
ckpt.close();
process.stdout.write(JSON.stringify({ layer: Number(layer), index: Number(index), key, value }) + '\n');
