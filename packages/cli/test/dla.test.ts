/** `sp dla`: the JSON contract equals the library's directLogitAttribution; reports; one-line errors. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { directLogitAttribution, gpt2, type GPT2 } from '@sp/core';
import { ensureBuilt, expectOneLineError, FIXTURES, sp } from './cli-helpers.js';

const tiny = path.join(FIXTURES, 'tiny-gpt2');
const PROMPT = 'The capital of France';
let model: GPT2;
let out: string;
beforeAll(async () => {
  ensureBuilt();
  model = await gpt2(tiny, { backend: process.env.SP_BACKEND ?? 'wasm' });
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-dla-cli-'));
});
afterAll(() => {
  model?.dispose();
  fs.rmSync(out, { recursive: true, force: true });
});

test('sp dla --json: the contract keys, the library result, components summing to the total', () => {
  const r = sp(['dla', '--model', tiny, '--prompt', PROMPT, '--token', ' is', '--vs', ' was', '--position', '-2', '--json']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout) as Record<string, unknown> & { components: Array<{ name: string; value: number }>; total: number };
  expect(Object.keys(j).sort()).toEqual(['components', 'ids', 'logit', 'model', 'position', 'scale', 'token', 'token_id', 'tokens', 'total', 'vs', 'vs_id']);
  const want = directLogitAttribution(model, PROMPT, { token: ' is', vs: ' was', position: -2 });
  expect(j.position).toBe(want.tokens.length - 2);
  expect([j.token, j.token_id, j.vs, j.vs_id]).toEqual([' is', 318, ' was', 373]);
  expect(j.components.map((c) => c.name)).toEqual(want.components.map((c) => c.name));
  j.components.forEach((c, i) => expect(c.value).toBeCloseTo(want.components[i].value, 6));
  expect(Math.abs(j.components.reduce((a, c) => a + c.value, 0) - j.total)).toBeLessThan(1e-4);
  expect(Math.abs(j.total - (j.logit as number))).toBeLessThan(1e-4);
  const { nLayer, nHead } = model.config;
  expect(j.components).toHaveLength(2 + nLayer * (nHead + 1) + 1);
});

test('sp dla (text) prints the top components and the total; --html/--svg write the report', () => {
  const html = path.join(out, 'dla.html');
  const svg = path.join(out, 'dla.svg');
  const r = sp(['dla', '--model', tiny, '--prompt', PROMPT, '--token', ' is', '--top', '3', '--html', html, '--svg', svg]);
  expect(r.status).toBe(0);
  const want = directLogitAttribution(model, PROMPT, { token: ' is' });
  const lines = r.stdout.trimEnd().split('\n');
  expect(lines[0]).toContain(`logit(" is") at position ${want.position}`);
  expect(lines).toHaveLength(2 + 3 + 2); // title, header, 3 components, other, total
  const top = [...want.components].sort((a, b) => Math.abs(b.value) - Math.abs(a.value))[0];
  expect(lines[2].startsWith(top.name.padEnd(12) + top.value.toFixed(4).padStart(11))).toBe(true);
  expect(lines.at(-1)!.startsWith('total'.padEnd(12) + want.total.toFixed(4).padStart(11))).toBe(true);
  expect(fs.readFileSync(html, 'utf8')).toContain('<html');
  expect(fs.readFileSync(svg, 'utf8')).toContain('<svg');
});

test.each([
  [['--token', ' is are'], 'token " is are" is 2 tokens'],
  [['--token', ' is', '--vs', 'hello world'], 'vs "hello world" is 2 tokens'],
  [['--token', ' is', '--position', '9'], 'position 9 is out of range for a 4-token prompt'],
  [['--token', ' is', '--position', 'x'], '--position must be an integer'],
  [[], 'needs the token'],
  [['--token', ' is', '--token-id', '318'], 'not both'],
])('one-line error: %j', (args, text) => {
  expectOneLineError(sp(['dla', '--model', tiny, '--prompt', PROMPT, ...args]), text);
});

test('a bad report path fails before the model loads', () => {
  expectOneLineError(sp(['dla', '--model', tiny, '--prompt', PROMPT, '--token', ' is', '--html', path.join(out, 'nope', 'x.html')]), 'cannot write --html');
});
