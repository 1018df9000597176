/**
 * Run by dispose-rss.test.ts in a child jest with --expose-gc (not matched by the normal test run):
 * loads, runs and disposes one model $SP_RSS_CYCLES times and writes the RSS after each cycle (after
 * forced GCs) to $SP_RSS_OUT as JSON.
 */
import fs from 'node:fs';
import vm from 'node:vm';
import { gpt2, initBackend } from '@sp/core';
import { engineInfo, engineName } from '@sp/core/internals';

// Jest's test context has no `gc`; a fresh context made while --expose-gc is on does.
const gc = vm.runInNewContext('gc') as () => void;
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20)); // finalizers and worker shutdowns run between GCs
  }
};

test('load / forward / dispose cycles', async () => {
  const dir = process.env.SP_RSS_MODEL!;
  const cycles = Number(process.env.SP_RSS_CYCLES);
  const rss: number[] = [];
  let arenas = 0, engine = '';
  // The baseline has the backend and the engine's native library loaded (onnxruntime's is ~35 MB of
  // code and tables): fixed costs of the process, not copies of a model's weights.
  await initBackend('wasm');
  engineName();
  await settle();
  const before = process.memoryUsage().rss;
  let peak = 0, held = 0;
  for (let c = 0; c < cycles; c++) {
    const model = await gpt2(dir, { backend: 'wasm', download: false });
    ({ arenas, engine } = engineInfo(model));
    if (c === 0) {
      await settle(); // the loader's transient buffers collected: what the loaded model holds
      held = process.memoryUsage().rss;
    }
    const logits = model.forward([1, 2, 3]); // runs the big matmuls on the worker pool
    expect(logits.shape).toEqual([1, 3, 50257]);
    logits.dispose();
    if (c === 0) peak = process.resourceUsage().maxRSS * 1024; // the first load and forward pass
    model.dispose();
    await settle();
    rss.push(process.memoryUsage().rss);
  }
  fs.writeFileSync(process.env.SP_RSS_OUT!, JSON.stringify({ rss, arenas, engine, before, peak, held }));
});
