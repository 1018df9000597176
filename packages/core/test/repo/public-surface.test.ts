/**
 * The public surface of @sp/core: `@sp/core/light` is a true subset of the main entry, engine
 * internals live only in `@sp/core/internals`, and the emitted public .d.ts (stripInternal) shows
 * nothing of GPT2's parameters, checkpoint, tokenizer or its internal step/patches/capture.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as core from '@sp/core';
import * as internals from '@sp/core/internals';
import * as light from '@sp/core/light';
import { repoRoot, tmpDir } from '../helpers/fixtures.js';

const SRC = path.join(repoRoot, 'packages/core/src');

/** Every name (values and types) an entry file exports, from its `export { … } from` lists. */
function exportedNames(file: string): Set<string> {
  const text = fs.readFileSync(path.join(SRC, file), 'utf8');
  const out = new Set<string>();
  for (const m of text.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)) {
    for (const part of m[1].split(',')) {
      const n = part.trim().replace(/^type\s+/, '').split(/\s+as\s+/).pop()!.trim();
      if (n) out.add(n);
    }
  }
  return out;
}

const ENGINE = ['KVCache', 'LayerKV', 'Patch', 'ForwardOutput', 'DeviceWeights', 'BlockWeights', 'Linear', 'arenaCapacity', 'usePackedMatmul', 'gemmThreads'];

test('@sp/core/light is a true subset of @sp/core: every name, the same value', () => {
  const lightValues = Object.keys(light);
  expect(lightValues.length).toBeGreaterThan(10);
  const differs = lightValues.filter((k) => !(k in core) || (core as Record<string, unknown>)[k] !== (light as Record<string, unknown>)[k]);
  expect(differs).toEqual([]);
  // types too (they have no run-time value): by the entries' export lists
  const index = exportedNames('index.ts');
  expect([...exportedNames('light.ts')].filter((n) => !index.has(n))).toEqual([]);
});

test('engine internals are in @sp/core/internals, not in @sp/core', () => {
  const index = exportedNames('index.ts');
  expect(ENGINE.filter((n) => index.has(n))).toEqual([]);
  for (const n of ['arenaCapacity', 'usePackedMatmul', 'gemmThreads', 'deviceWeights', 'checkpointOf', 'engineInfo']) expect([n, typeof (internals as Record<string, unknown>)[n]]).toEqual([n, 'function']);
  expect(Object.keys(core).filter((k) => ENGINE.includes(k))).toEqual([]);
  const inner = exportedNames('internals.ts');
  expect(ENGINE.filter((n) => !inner.has(n))).toEqual([]);
});

test('the emitted public .d.ts shows no weights, checkpoint or engine internals', () => {
  // Emit declarations afresh (dist may be stale) with the package's own tsconfig (stripInternal).
  const out = tmpDir('sp-dts-');
  try {
    const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(repoRoot, 'packages/core/tsconfig.json'), '--emitDeclarationOnly', '--declarationMap', 'false', '--sourceMap', 'false', '--outDir', out], { cwd: repoRoot, encoding: 'utf8' });
    expect(fs.existsSync(path.join(out, 'index.d.ts'))).toBe(true);
    if (r.status !== 0) console.warn(`tsc reported errors elsewhere (declarations still emitted):\n${r.stdout.slice(0, 2000)}`);

    const gpt2 = fs.readFileSync(path.join(out, 'model/gpt2.d.ts'), 'utf8');
    const cls = gpt2.slice(gpt2.indexOf('export declare class GPT2'));
    expect(cls.length).toBeGreaterThan(100);
    // the façade is there ...
    for (const m of ['tokenId(', 'get eosTokenId()', 'tokenEmbedding(', 'ffValueNorms(', 'unembedVectors(', 'unembedResid(', 'get parameterBytes()', 'runWithCache(', 'layerNormParams(']) expect([m, cls.includes(m)]).toEqual([m, true]);
    // ... and nothing of the engine
    const members = [...cls.matchAll(/^\s{4}(?:(?:private|protected|readonly|static|get)\s+)*(#?\w+)/gm)].map((m) => m[1]);
    expect(members.filter((m) => ['weights', 'checkpoint', 'tokenizer', 'step', 'patches', 'capture', 'run', 'validHooks', 'disposed', 'checkAlive'].includes(m))).toEqual([]);
    expect(gpt2).not.toMatch(/\b(DeviceWeights|BlockWeights|Arena|Linear|KVCache|Patch|ForwardOutput)\b/);
    expect(gpt2).not.toMatch(/\bstep\(|\bpatches\(|\bcapture\(/);

    // Everything reachable from index.d.ts: no engine type is declared or named there.
    const seen = new Set<string>();
    const walk = (rel: string): void => {
      if (seen.has(rel)) return;
      seen.add(rel);
      const text = fs.readFileSync(path.join(out, rel), 'utf8');
      for (const m of text.matchAll(/from\s+'(\.{1,2}\/[^']+)\.js'/g)) walk(path.normalize(path.join(path.dirname(rel), `${m[1]}.d.ts`)));
    };
    walk('index.d.ts');
    expect(seen.has(path.normalize('model/gpt2.d.ts'))).toBe(true);
    const leaks = [...seen].flatMap((f) => {
      const text = fs.readFileSync(path.join(out, f), 'utf8');
      return [...text.matchAll(/\b(DeviceWeights|BlockWeights|KVCache|LayerKV|PackedLinear|TensorLinear|Arena)\b/g)].map((m) => `${f}: ${m[1]}`);
    });
    expect(leaks).toEqual([]);
    expect([...seen]).not.toContain(path.normalize('model/weights.d.ts'));
    expect([...seen]).not.toContain(path.normalize('model/forward.d.ts'));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}, 180000);
