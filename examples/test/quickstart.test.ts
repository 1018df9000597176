/** The README's usage example is examples/quickstart.ts verbatim, and it runs. */
import fs from 'node:fs';
import path from 'node:path';
import { gpt2, generate } from '@sp/core';
import { main } from '../quickstart.js';
import { fixtureDir, golden, repoRoot } from '../../packages/core/test/helpers/fixtures.js';

test('README embeds examples/quickstart.ts verbatim', () => {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const example = fs.readFileSync(path.join(repoRoot, 'examples/quickstart.ts'), 'utf8');
  expect(readme).toContain('```ts\n' + example + '```');
});

test('quickstart runs on a test model and its answers match the golden file', async () => {
  const lines: string[] = [];
  const dir = fixtureDir('tiny-gpt2');
  const { nextId, continuation } = await main(dir, (s) => lines.push(s));
  const g = golden('tiny-gpt2');
  const capital = g.cases.find((c) => c.name === 'capital')!;
  expect(nextId).toBe(capital.argmax_per_position.at(-1));
  // Same virtual-token layout as the golden case term-means-param-1-5 (FF key 5 of layer 1 at position 3).
  const term = g.cases.find((c) => c.name === 'term-means-param-1-5')!;
  expect(continuation).toEqual(term.greedy);
  expect(lines).toHaveLength(4);
  expect(lines[1]).toBe('resid_post of block 0: [1,5,32]');
  // The ablation hook really changes the output.
  const model = await gpt2(dir);
  const a = model.forward('The capital of France is');
  const b = model.runWithHooks('The capital of France is', { fwdHooks: [['blocks.0.hook_mlp_out', (t) => t.mul(0)]] });
  expect((await a.sub(b).abs().max().data())[0]).toBeGreaterThan(1e-3);
  a.dispose();
  b.dispose();
  expect((await generate(model, term.ids, { maxNewTokens: 1 })).newTokens[0]).toHaveLength(1);
  model.dispose();
});
