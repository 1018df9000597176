/** `sp rank`: rankings and --watch agree with `sp lens` and `sp generate`; bad watch tokens are explained. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureBuilt, expectOneLineError, FIXTURES, sp } from './cli-helpers.js';

const tiny = path.join(FIXTURES, 'tiny-gpt2');
const ids = '464,8251,284,262,13447'; // "The keys to the cabinet"
let out: string;
beforeAll(() => {
  ensureBuilt();
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-rank-cli-'));
});
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

interface LensJson { layers: Array<{ positions: Array<{ top: Array<{ id: number; prob: number }> }> }> }
const json = <T,>(args: string[]): T => {
  const r = sp(args);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as T;
};

test('rankings: a lens top-1 token has rank 1 and the same probability', () => {
  const lens = json<LensJson>(['lens', '--model', tiny, '--ids', ids, '--topk', '1', '--json']);
  const r = json<{ positions: Array<{ pos: number; target: { id: number }; predicted: boolean; ranks: number[]; probs: number[] }> }>(['rank', '--model', tiny, '--ids', ids, '--json']);
  expect(r.positions.map((p) => p.pos)).toEqual([0, 1, 2, 3, 4]);
  expect(r.positions.map((p) => p.target.id)).toEqual([8251, 284, 262, 13447, lens.layers[2].positions[4].top[0].id]);
  expect(r.positions[4].predicted).toBe(true);
  expect(r.positions[4].ranks[2]).toBe(1);
  expect(r.positions[4].probs[2]).toBeCloseTo(lens.layers[2].positions[4].top[0].prob, 9);
  // watching each layer's own top-1 token at the last position: rank 1 at that layer
  const tops = lens.layers.map((l) => l.positions[4].top[0].id);
  const w = json<{ position: number; watch: Array<{ id: number }>; layers: Array<{ ranks: number[]; probs: number[] }> }>(['rank', '--model', tiny, '--ids', ids, '--watch-ids', tops.join(','), '--json']);
  expect(w.position).toBe(4);
  tops.forEach((_, li) => {
    expect(w.layers[li].ranks[li]).toBe(1);
    expect(w.layers[li].probs[li]).toBeCloseTo(lens.layers[li].positions[4].top[0].prob, 9);
  });
});

test('--watch " is"," are" (as the shell passes it) and as a JSON array', () => {
  const a = json<{ watch: Array<{ id: number; token: string }>; layers: unknown[] }>(['rank', '--model', tiny, '--prompt', 'The keys to the cabinet', '--watch', ' is, are', '--json']);
  expect(a.watch).toEqual([{ id: 318, token: ' is' }, { id: 389, token: ' are' }]);
  expect(a.layers).toHaveLength(3);
  const b = json<typeof a>(['rank', '--model', tiny, '--prompt', 'The keys to the cabinet', '--watch', '[" is"," are"]', '--json']);
  expect(b).toEqual(a);
  const human = sp(['rank', '--model', tiny, '--prompt', 'The keys to the cabinet', '--watch', ' is, are']);
  expect(human.stdout).toMatch(/^rank \(probability\) after "The keys to the cabinet":\nlayer\s+" is"\s+" are"\n2 /);
});

test('--generate ranks the greedy continuation, as sp generate produces it', () => {
  const g = json<{ ids: number[] }>(['generate', '--model', tiny, '--ids', '464,8251', '--max-new-tokens', '3', '--json']);
  const r = json<{ ids: number[]; prompt_length: number; positions: Array<{ pos: number; target: { id: number }; predicted: boolean }> }>(['rank', '--model', tiny, '--ids', '464,8251', '--generate', '3', '--json']);
  expect(r.ids).toEqual([464, 8251, ...g.ids]);
  expect(r.prompt_length).toBe(2);
  expect(r.positions.map((p) => [p.pos, p.target.id, p.predicted])).toEqual([[1, g.ids[0], false], [2, g.ids[1], false], [3, g.ids[2], false]]);
});

test('--html / --svg / --png for rankings and watch', () => {
  const files = ['rank.html', 'rank.svg', 'watch.html', 'watch.png'].map((f) => path.join(out, f));
  expect(sp(['rank', '--model', tiny, '--ids', ids, '--html', files[0], '--svg', files[1]]).status).toBe(0);
  expect(sp(['rank', '--model', tiny, '--ids', ids, '--watch', ' is, are', '--html', files[2], '--png', files[3]]).status).toBe(0);
  expect(fs.readFileSync(files[0], 'utf8')).toContain('Rankings: &quot;The keys to the cabinet&quot;');
  expect(fs.readFileSync(files[1], 'utf8')).toMatch(/^<svg/);
  expect(fs.readFileSync(files[2], 'utf8')).toContain('Watch: &quot; is&quot; vs &quot; are&quot;');
  expect(fs.readFileSync(files[3]).subarray(1, 4).toString()).toBe('PNG');
});

test('bad input: one line, exit 1, saying what is wrong', () => {
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--watch', ' is not, are']), 'watch token " is not" is not a single token: it tokenizes as " is" (318) + " not" (407)');
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--watch', ' is,']), 'watch token "" is empty');
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--watch', '[" is"']), 'is not a JSON array of strings');
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--watch', ' is', '--position', '5']), 'position 5 is out of range for a 5-token prompt (use 0..4, or -1 for the last)');
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--watch', ' is', '--position', '-6']), 'position -6 is out of range');
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--watch', ' is', '--watch-ids', '318']), 'give --watch or --watch-ids, not both');
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--position', '1']), '--position needs --watch');
  expectOneLineError(sp(['rank', '--model', tiny, '--prompt', '']), 'empty');
});

test("--ecco-position: Ecco's numbering (the predicted token) reads hidden state p - 1", () => {
  const w = (extra: string[]) => json<{ position: number; layers: unknown[] }>(['rank', '--model', tiny, '--ids', ids, '--watch', ' is, are', '--json', ...extra]);
  const ecco = w(['--ecco-position', '3']);
  expect(ecco.position).toBe(2);
  expect(ecco).toEqual(w(['--position', '2']));
  expect(w(['--ecco-position', '5'])).toEqual(w([])); // Ecco's position=5 on a 5-token prompt: the last state
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--watch', ' is', '--ecco-position', '6']), 'Ecco position 6 is out of range for a 5-token prompt (use 1..5');
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--watch', ' is', '--ecco-position', '0']), 'Ecco position 0 is out of range');
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--watch', ' is', '--ecco-position', '2', '--position', '1']), 'give --position or --ecco-position, not both');
  expectOneLineError(sp(['rank', '--model', tiny, '--ids', ids, '--ecco-position', '2']), '--ecco-position needs --watch');
});
