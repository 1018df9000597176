/** `sp patch`: the JSON contract (keys and values = the library's), the text grid, reports, one-line errors. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { activationPatching, gpt2, type GPT2 } from '@sp/core';
import { ensureBuilt, expectOneLineError, FIXTURES, sp } from './cli-helpers.js';

const tiny = path.join(FIXTURES, 'tiny-gpt2');
const CLEAN = 'The keys to the cabinet is';
const CORRUPT = 'The key to the cabinet is';
let out: string;
let model: GPT2;
beforeAll(async () => {
  ensureBuilt();
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-patch-cli-'));
  model = await gpt2(tiny, { backend: process.env.SP_BACKEND ?? 'wasm' });
});
afterAll(() => {
  model?.dispose();
  fs.rmSync(out, { recursive: true, force: true });
});

const args = (site: string, ...more: string[]) => ['patch', '--model', tiny, '--clean', CLEAN, '--corrupt', CORRUPT, '--answer', ' are', '--wrong', ' is', '--site', site, ...more];

test.each([['resid_pre', false], ['attn_out', false], ['mlp_out', false], ['z', false], ['z', true]] as const)('--site %s (per position %s) --json: the contract keys, the library values', (site, perPosition) => {
  const r = sp(args(site, '--json', ...(perPosition ? ['--per-position'] : [])));
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout.trim().split('\n')).toHaveLength(1);
  const j = JSON.parse(r.stdout);
  const keys = ['site', 'clean_metric', 'corrupt_metric', 'layers', 'positions', ...(site === 'z' ? ['heads'] : []), 'values', 'tokens', 'answer', 'wrong', 'model'];
  expect(Object.keys(j)).toEqual(keys);
  const want = activationPatching(model, { clean: CLEAN, corrupt: CORRUPT, answer: ' are', wrong: ' is', site, perPosition });
  expect(j.site).toBe(site);
  expect(j.layers).toEqual([0, 1]);
  expect(j.positions).toEqual(want.positions);
  expect(j.tokens).toEqual(want.tokens);
  expect(j.answer).toBe(' are');
  expect(j.wrong).toBe(' is');
  expect(Math.abs(j.clean_metric - want.clean_metric)).toBeLessThan(1e-6);
  expect(Math.abs(j.corrupt_metric - want.corrupt_metric)).toBeLessThan(1e-6);
  const got = (j.values as unknown[]).flat(2) as number[];
  const exp = want.values.flat(2) as number[];
  expect(got).toHaveLength(2 * (site === 'z' ? 4 * (perPosition ? want.positions.length : 1) : want.positions.length));
  got.forEach((v, i) => expect(Math.abs(v - exp[i])).toBeLessThan(1e-6));
  if (perPosition) expect((j.values as number[][][])[0][0]).toHaveLength(4);
});

test('the text output is a grid: layers × positions (token labels), z: layers × heads', () => {
  const r = sp(args('resid_pre'));
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines[0]).toMatch(/^activation patching \(resid_pre\): metric logit\(" are"\) − logit\(" is"\) at the last position; clean -?\d+\.\d{3}, corrupt -?\d+\.\d{3}$/);
  expect(lines[1]).toMatch(/^layer\s+0 "The"\s+1 " keys"/);
  expect(lines.slice(2).map((l) => l.split(/\s+/)[0])).toEqual(['0', '1']);
  const want = activationPatching(model, { clean: CLEAN, corrupt: CORRUPT, answer: ' are', wrong: ' is', site: 'resid_pre' });
  expect(want.positions).toHaveLength(6);
  (want.values as number[][]).forEach((row, l) => expect(lines[2 + l].trim().split(/\s+/)).toEqual([String(l), ...row.map((v) => v.toFixed(3))]));
  const z = sp(args('z')).stdout.trim().split('\n');
  expect(z[1].split(/\s+/)).toEqual(['layer', 'H0', 'H1', 'H2', 'H3']);
  expect(z).toHaveLength(4);
});

test('--html, --svg and --png write the heatmap', () => {
  const [html, svg, png] = ['p.html', 'p.svg', 'p.png'].map((f) => path.join(out, f));
  const r = sp(args('attn_out', '--html', html, '--svg', svg, '--png', png));
  expect(r.status).toBe(0);
  expect(fs.readFileSync(html, 'utf8').startsWith('<!doctype html>')).toBe(true);
  expect(fs.readFileSync(svg, 'utf8')).toMatch(/^<svg/);
  expect(fs.readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
});

test('bad input: one error line each', () => {
  expectOneLineError(sp(['patch', '--model', tiny, '--clean', 'The cat is', '--corrupt', 'The cats are here', '--answer', ' is', '--wrong', ' are']), 'same number of tokens (clean 3, corrupt 4)');
  expectOneLineError(sp(args('resid_pre').map((a) => (a === ' are' ? ' interpretability' : a))), 'answer " interpretability" is');
  expectOneLineError(sp(args('pattern')), '--site must be resid_pre, attn_out, mlp_out, z');
  expectOneLineError(sp(args('mlp_out', '--per-position')), 'perPosition is for site z');
  expectOneLineError(sp(args('z', '--per-position', '--html', path.join(out, 'x.html'))), '--per-position results');
  expectOneLineError(sp(['patch', '--model', tiny, '--clean', 'a', '--corrupt', 'b', '--answer', ' is']), 'give --wrong');
  expectOneLineError(sp(args('resid_pre', '--html', path.join(out, 'no/such/dir/x.html'))), 'cannot write');
});
