/** `sp attr`: JSON keys of the contract, values equal the library's, report files, one-line errors. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gpt2, inputAttribution, type GPT2 } from '@sp/core';
import { ensureBuilt, expectOneLineError, FIXTURES, sp } from './cli-helpers.js';

const tiny = path.join(FIXTURES, 'tiny-gpt2');
let out: string;
let model: GPT2;
beforeAll(async () => {
  ensureBuilt();
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-attr-cli-'));
  model = await gpt2(tiny, { backend: process.env.SP_BACKEND ?? 'wasm' });
});
afterAll(() => {
  model?.dispose();
  fs.rmSync(out, { recursive: true, force: true });
});

describe.each([
  ['grad', []],
  ['grad-x-input', ['--position', '2']],
  ['integrated-gradients', ['--steps', '8', '--normalize']],
] as const)('sp attr --method %s --json', (method, extra) => {
  test('the contract keys; the library\'s values', () => {
    const has = (flag: string) => (extra as readonly string[]).includes(flag);
    const r = sp(['attr', '--model', tiny, '--prompt', 'The cat sat on the', '--target-token', ' mat', '--method', method, ...extra, '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    for (const k of ['ids', 'tokens', 'target_id', 'position', 'method', 'target_value', 'attributions']) expect(j).toHaveProperty(k);
    const lib = inputAttribution(model, 'The cat sat on the', {
      targetToken: ' mat', method, position: has('--position') ? 2 : undefined, steps: has('--steps') ? 8 : undefined, normalize: has('--normalize'),
    });
    expect(j.ids).toEqual(lib.ids);
    expect(j.tokens).toEqual(lib.tokens);
    expect(j.target_id).toBe(model.tokenId(' mat'));
    expect(j.method).toBe(method);
    expect(j.position).toBe(has('--position') ? 2 : lib.ids.length - 1);
    expect(Math.abs((j.target_value as number) - lib.target_value)).toBeLessThan(1e-6);
    const a = j.attributions as number[];
    expect(a).toHaveLength(lib.ids.length);
    a.forEach((v, i) => expect(Math.abs(v - lib.attributions[i])).toBeLessThan(1e-6));
    if (method === 'integrated-gradients') {
      expect(j.steps).toBe(8);
      expect(j.normalize).toBe(true);
      expect(Math.abs(a.reduce((s, v) => s + v, 0) - 1)).toBeLessThan(1e-9);
    }
  });
});

test('text table and report files', () => {
  const html = path.join(out, 'a.html'), svg = path.join(out, 'a.svg');
  const r = sp(['attr', '--model', tiny, '--ids', '464,3797,3332', '--target-id', '318', '--method', 'grad', '--html', html, '--svg', svg]);
  expect(r.status).toBe(0);
  const lib = inputAttribution(model, [464, 3797, 3332], { targetId: 318, method: 'grad' });
  expect(r.stdout).toContain(`grad attribution of logit(" is") = ${lib.target_value.toFixed(4)} at position 2`);
  expect(r.stdout).toContain(lib.attributions[0].toFixed(5));
  expect(r.stdout.trim().split('\n')).toHaveLength(2 + 3 + 1);
  expect(fs.readFileSync(html, 'utf8')).toMatch(/<html/i);
  expect(fs.readFileSync(svg, 'utf8')).toMatch(/<svg/);
});

test.each([
  [['--target-token', ' hippopotamus'], 'not one'],
  [['--target-id', '318', '--position', '9'], 'position 9 is out of range'],
  [['--target-id', '318', '--method', 'saliency'], '--method must be grad, grad-x-input, integrated-gradients (got "saliency")'],
  [['--method', 'grad'], 'needs --target-token'],
  [['--target-id', '318', '--method', 'grad', '--steps', '8'], '--steps needs --method integrated-gradients'],
  [['--target-id', '99999'], 'targetId'],
])('one-line error: %j', (args, text) => {
  const method = args.includes('--method') ? [] : ['--method', 'grad'];
  expectOneLineError(sp(['attr', '--model', tiny, '--ids', '464,3797,3332', ...method, ...args]), text);
});
