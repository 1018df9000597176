/**
 * Model load in a fresh process (peak RSS is per process): `node load-child.js <dir> <backend>`.
 * Prints one JSON line: backend start, safetensors → ready, peak RSS at ready, then the same after
 * the first forward pass (when XNNPACK packs its own copy of each weight matrix).
 */
import { initBackend, gpt2, tf } from '@sp/core';
import { matmulEngine } from './threads.js';

const [dir, backend] = process.argv.slice(2);
const mb = () => process.resourceUsage().maxRSS / 1024;
const t0 = performance.now();
await initBackend(backend);
const t1 = performance.now();
const rssBackend = mb();
const model = await gpt2(dir, { backend, download: false });
const t2 = performance.now();
const rssReady = mb();
const logits = model.forward([464, 3290, 318], { logits: 'last' });
logits.dataSync();
logits.dispose();
const t3 = performance.now();
process.stdout.write(
  JSON.stringify({
    backend: tf.getBackend(),
    ...matmulEngine(),
    backendInitMs: t1 - t0,
    loadMs: t2 - t1,
    firstForwardMs: t3 - t2,
    weightBytes: model.parameterBytes,
    rssBackendMB: rssBackend,
    peakRssReadyMB: rssReady,
    peakRssAfterForwardMB: mb(),
  }) + '\n',
);
model.dispose();
