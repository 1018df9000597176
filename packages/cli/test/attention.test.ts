/** `sp attention`: JSON = attentionPatterns (rows sum to 1, causal zeros), HTML with every head, one-line errors. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { attentionPatterns, gpt2, type AttentionResult } from '@sp/core';
import { checkAttentionResult } from '@sp/report';
import { ensureBuilt, expectOneLineError, FIXTURES, sp } from './cli-helpers.js';

const tiny = path.join(FIXTURES, 'tiny-gpt2');
const IDS = [464, 3139, 286, 4881, 318];
let out: string;
beforeAll(() => {
  ensureBuilt();
  out = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-attn-cli-'));
});
afterAll(() => fs.rmSync(out, { recursive: true, force: true }));

test('--json prints every layer and head: the library result, a valid report input, rows summing to 1, zeros above the diagonal', async () => {
  const r = sp(['attention', '--model', tiny, '--ids', IDS.join(','), '--json']);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout) as AttentionResult;
  const model = await gpt2(tiny, { backend: process.env.SP_BACKEND ?? 'wasm' });
  try {
    const want = attentionPatterns(model, IDS);
    expect(j.ids).toEqual(IDS);
    expect(j.tokens).toEqual(want.tokens);
    expect(j.layers.map((L) => [L.layer, L.heads.length])).toEqual([[0, 4], [1, 4]]);
    j.layers.forEach((L, l) => L.heads.forEach((head, h) => head.forEach((row, q) => {
      expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
      row.forEach((v, k) => {
        if (k > q) expect(v).toBe(0);
        expect(Math.abs(v - want.layers[l].heads[h][q][k])).toBeLessThan(1e-6);
      });
    })));
  } finally {
    model.dispose();
  }
  expect(() => checkAttentionResult(j)).not.toThrow();
});

test('--html writes an offline report with every head; --layer picks one block; --svg writes one layer', () => {
  const html = path.join(out, 'a.html'), svg = path.join(out, 'a.svg');
  const r = sp(['attention', '--model', tiny, '--prompt', 'The cat sat', '--html', html, '--svg', svg]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const text = fs.readFileSync(html, 'utf8');
  expect(text.startsWith('<!DOCTYPE html>') || text.startsWith('<!doctype html>')).toBe(true);
  for (let l = 0; l < 2; l++) for (let h = 0; h < 4; h++) expect(text).toContain(`L${l}.H${h}`);
  expect(text).not.toMatch(/<script[^>]+src=|<link[^>]+href="http/); // offline: nothing fetched
  expect(fs.readFileSync(svg, 'utf8')).toContain('<svg');

  const one = sp(['attention', '--model', tiny, '--prompt', 'The cat sat', '--layer', '1', '--json']);
  expect((JSON.parse(one.stdout) as AttentionResult).layers.map((L) => L.layer)).toEqual([1]);
  const txt = sp(['attention', '--model', tiny, '--ids', IDS.join(',')]);
  expect(txt.status).toBe(0);
  expect(txt.stdout.split('\n').filter((x) => /^L\d\.H\d/.test(x))).toHaveLength(8);
});

test('bad layer, bad output path, no input: one error line, exit 1', () => {
  expectOneLineError(sp(['attention', '--model', tiny, '--ids', '1,2', '--layer', '2']), 'layer 2 is out of range [0, 1]');
  expectOneLineError(sp(['attention', '--model', tiny, '--ids', '1,2', '--layer', 'x']), '--layer must be an integer');
  expectOneLineError(sp(['attention', '--model', tiny, '--ids', '1,2', '--html', path.join(out, 'nope', 'a.html')]), 'cannot write --html');
  expectOneLineError(sp(['attention', '--model', tiny]), 'give --ids or --prompt');
});
