/** `sp lens`: JSON matches the numpy golden lens; report files are written; bad input is one line. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureBuilt, expectOneLineError, FIXTURES, sp } from './cli-helpers.js';

interface GoldenLens {
  model: { n_layer: number };
  cases: Array<{ name: string; ids: number[]; inject: unknown; lens: Array<{ layer: number; positions: Array<{ top: Array<{ id: number; prob: number }> }> }> }>;
}
interface LensJson {
  tokens: string[];
  ids: number[];
  layers: Array<{ layer: number; hook: string; positions: Array<{ top: Array<{ id: number; token: string; prob: number }>; entropy: number; kl: number }> }>;
}
/** `--neurons` adds the FF neurons at one position (what `topNeurons` returns). */
interface LensNeuronsJson extends LensJson {
  neuron_position: number;
  neurons: Array<{ layer: number; index: number; score: number }>;
}

const tiny = path.join(FIXTURES, 'tiny-gpt2');
let out: string;
beforeAll(() => {
  ensureBuilt();
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-lens-cli-'));
});
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

describe.each(['tiny-gpt2', 'tiny-gpt2-f16-prefixed'])('sp lens --json on %s vs numpy golden', (name) => {
  const g: GoldenLens = JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'golden.json'), 'utf8'));
  for (const c of g.cases.filter((x) => !x.inject)) {
    test(`${c.name}: top-5 ids and probs at every layer`, () => {
      const r = sp(['lens', '--model', path.join(FIXTURES, name), '--ids', c.ids.join(','), '--topk', '5', '--json']);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout.trim().split('\n')).toHaveLength(1);
      const j = JSON.parse(r.stdout) as LensJson;
      expect(j.ids).toEqual(c.ids);
      expect(j.tokens).toHaveLength(c.ids.length);
      expect(j.layers.map((l) => l.layer)).toEqual(Array.from({ length: g.model.n_layer + 1 }, (_, i) => i));
      c.lens.forEach((gl, li) => gl.positions.forEach((gp, p) => {
        const mine = j.layers[li].positions[p].top;
        expect(mine).toHaveLength(5);
        gp.top.forEach((t, k) => {
          expect(Math.abs(mine[k].prob - t.prob) / t.prob).toBeLessThan(1e-4);
          if (mine[k].id !== t.id) expect(Math.abs(gp.top.find((u) => u.id === mine[k].id)!.prob - t.prob) / t.prob).toBeLessThan(1e-4);
        });
      }));
    });
  }
});

test('the human table shows output at the top and one column per token', () => {
  const r = sp(['lens', '--model', tiny, '--prompt', 'The capital of France is']);
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines[0]).toMatch(/^layer\s+0 "The"\s+1 " capital"\s+2 " of"\s+3 " France"\s+4 " is"$/);
  expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['2', '1', 'embed']);
});

test('--view all, --neurons and the JSON they give', () => {
  const r = sp(['lens', '--model', tiny, '--ids', '464,3139,286', '--view', 'all', '--topk', '2', '--neurons', '4', '--position', '1', '--json']);
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout) as LensNeuronsJson;
  expect(j.layers.map((l) => l.hook)).toEqual(['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_mid', 'blocks.0.hook_resid_post', 'blocks.1.hook_resid_mid', 'blocks.1.hook_resid_post']);
  expect(j.neurons).toHaveLength(4);
  expect(j.neuron_position).toBe(1);
  const scores = j.neurons.map((n) => Math.abs(n.score));
  expect([...scores].sort((a, b) => b - a)).toEqual(scores);
  expect(j.layers[4].positions.every((c) => c.kl < 1e-6)).toBe(true);
});

test('--html, --svg and --png write the reports', () => {
  const [html, svg, png] = ['r.html', 'g.svg', 'g.png'].map((f) => path.join(out, f));
  const r = sp(['lens', '--model', tiny, '--prompt', '1, 1, 1,', '--html', html, '--svg', svg, '--png', png, '--neurons', '3']);
  expect(r.status).toBe(0);
  const page = fs.readFileSync(html, 'utf8');
  expect(page.startsWith('<!doctype html>')).toBe(true);
  expect(page).toContain("default-src 'none'");
  expect(page).not.toMatch(/<script[^>]+src=|<link[^>]+href=/); // everything inline
  expect(page).toContain('Top FF neurons at position 5');
  const s = fs.readFileSync(svg, 'utf8');
  expect(s).toMatch(/^<svg/);
  expect(s.match(/<text/g)!.length).toBeGreaterThan(3 * 6); // one label per cell at least
  const p = fs.readFileSync(png);
  expect(p.subarray(1, 4).toString()).toBe('PNG');
  expect(p.readUInt32BE(16)).toBeGreaterThan(300); // width
});

test('bad input: one line, exit 1', () => {
  expectOneLineError(sp(['lens', '--model', tiny, '--prompt', '']), 'empty');
  expectOneLineError(sp(['lens', '--model', tiny, '--ids', '464', '--view', 'sideways']), '--view must be layers, mid or all (got "sideways")');
  expectOneLineError(sp(['lens', '--model', tiny, '--ids', '464', '--topk', '0']), '--topk must be an integer ≥ 1');
  expectOneLineError(sp(['lens', '--model', tiny, '--ids', '464,11', '--neurons', '2', '--position', '2']), 'position 2 is out of range for a 2-token prompt');
  expectOneLineError(sp(['lens', '--model', tiny, '--ids', '464', '--position', '0']), '--position needs --neurons');
  expectOneLineError(sp(['lens', '--model', tiny, '--ids', '99999']), 'token id 99999 is out of range');
  expectOneLineError(sp(['lens', '--model', tiny, '--ids', '464', '--html', path.join(out, 'no/such/dir/x.html')]), 'cannot write');
});
