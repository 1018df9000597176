/**
 * gpt2-xl on the default backend, in a fresh process: `node xl-child.js <dir>`. Loads the
 * checkpoint, decodes greedily, prints one JSON line (load time, arenas, peak RSS, decode tok/s).
 */
import { generate, gpt2, tf } from '@sp/core';
import { engineInfo } from '@sp/core/internals';

const [dir, tokens = '8'] = process.argv.slice(2);
const mb = () => process.resourceUsage().maxRSS / 1024;
const t0 = performance.now();
const model = await gpt2(dir, { download: false });
const loadMs = performance.now() - t0;
const peakRssReadyMB = mb();
const greedy = { eosTokenId: null, doSample: false } as const;
const prompt = [464, 3290, 318, 257, 1332, 286, 262, 3288];
await generate(model, prompt, { ...greedy, maxNewTokens: 2 }); // warm-up
const n = Number(tokens);
const g = await generate(model, prompt, { ...greedy, maxNewTokens: n + 1 });
process.stdout.write(
  JSON.stringify({
    backend: tf.getBackend(),
    weightBytes: model.parameterBytes,
    arenas: engineInfo(model).arenas,
    loadMs,
    peakRssReadyMB,
    decodeTokensPerS: (1000 * n) / g.timing.decodeMs, // the first token comes from the prefill
    peakRssMB: mb(),
  }) + '\n',
);
model.dispose();
