/**
 * model.dispose() must give the weights' memory back: repeated load/dispose of a GPT-2-shaped model
 * (a 154 MB unembedding, 2 blocks) must not grow the process by a model per cycle. The gemm
 * workers held every arena's WebAssembly.Memory, so before the fix each cycle kept ~all of it.
 * Measured in a child process (--expose-gc, nothing else loaded) for a clean RSS.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot, tmpDir } from '../helpers/fixtures.js';
import { writeSparseGpt2 } from './sparse-gpt2.js';

let dir: string;
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

beforeAll(() => {
  dir = tmpDir('sp-dispose-rss-');
});

// The packed kernel (the workers held its arenas) and onnxruntime (its sessions must go with dispose).
test.each(['wasm', 'ort'])('engine %s: 8 load/forward/dispose cycles of a 214 MB model: RSS stays flat after the second; a loaded model holds under 1.5× the weights', (engine) => {
  const file = writeSparseGpt2(path.join(dir, 'model'), { nLayer: 2, dModel: 768 });
  const weights = file.size;
  expect(weights).toBeGreaterThan(200e6);
  const out = path.join(dir, 'rss.json');
  const jest = path.join(repoRoot, 'node_modules/jest/bin/jest.js');
  const r = spawnSync(process.execPath, ['--expose-gc', '--experimental-vm-modules', '--no-warnings', jest, '--runInBand', '--ci', '--testMatch', '**/test/perf/dispose-rss.child.ts'], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 100_000,
    // Two threads: the worker pool is used even on a one-core machine (it is what held the memory).
    env: { ...process.env, SP_THREADS: '2', SP_MATMUL: '', SP_ENGINE: engine, SP_RSS_MODEL: path.join(dir, 'model'), SP_RSS_CYCLES: '8', SP_RSS_OUT: out },
  });
  if (r.status !== 0) throw new Error(`child jest failed (${r.status}):\n${r.stderr.slice(-3000)}`);
  const r0 = JSON.parse(fs.readFileSync(out, 'utf8')) as { rss: number[]; arenas: number; engine: string; before: number; peak: number; held: number };
  const { rss } = r0;
  expect(r0.engine).toBe(engine);
  expect(r0.arenas).toBe(engine === 'wasm' ? 1 : 0); // the packed-kernel path: arenas the workers see
  // A loaded model holds less than 1.5× its weights (measured from a process with the backend and
  // the engine's library already loaded, see the child): one copy of each matrix. The peak (r0.peak, garbage not yet collected included) depends on GC timing: not asserted.
  expect(r0.held - r0.before).toBeLessThan(1.5 * weights);
  expect(r0.peak).toBeGreaterThanOrEqual(r0.held);
  expect(rss).toHaveLength(8);
  const growth = rss[7] - rss[1];
  // Before the fix: ~one model (214 MB) per cycle, ~1.3 GB over these 6 cycles.
  expect(growth).toBeLessThan(0.5 * weights);
});
