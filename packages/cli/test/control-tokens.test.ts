/**
 * Control-byte tokens in the terminal and in report files. A random checkpoint whose final layer
 * norm outputs a constant vector u (weight 0, bias u) makes every lens cell's logits u·E; the token
 * embeddings of ESC, NUL, DEL, form feed, CR, backspace and two lone UTF-8 bytes are set along u, so
 * they are the top tokens everywhere and what greedy decoding produces.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encodeSafetensors } from '@sp/core';
import { tmpDir } from '../../core/test/helpers/fixtures.js';
import { randomRefWeights } from '../../core/test/reference/random-model.js';
import { badXmlChars, byteTokens } from '../../core/test/tokenizer/byte-tokens.js';
import { ensureBuilt, sp } from './cli-helpers.js';

/** Top tokens, most probable first: ESC NUL DEL FF CR BS, lone bytes 0x9b and 0xe3. */
const BYTES = [0x1b, 0x00, 0x7f, 0x0c, 0x0d, 0x08, 0x9b, 0xe3];
let dir: string;
let ids: number[];

function writeControlModel(byteIds: number[]): string {
  const cfg = { nLayer: 2, nHead: 2, dModel: 16, nCtx: 32, vocabSize: 50257, eps: 1e-5 };
  const w = randomRefWeights(cfg, 77);
  const u = Float32Array.from({ length: cfg.dModel }, (_, i) => (i % 2 ? 0.25 : -0.25)); // |u| = 1
  w.get('ln_f.weight').fill(0);
  w.get('ln_f.bias').set(u);
  const wte = w.get('wte.weight');
  BYTES.forEach((b, j) => {
    for (let i = 0; i < cfg.dModel; i++) wte[byteIds[b] * cfg.dModel + i] = u[i] * (12 - 0.5 * j); // logit 12 - j/2
  });
  const d = tmpDir('sp-control-tokens-');
  fs.writeFileSync(path.join(d, 'model.safetensors'), encodeSafetensors(w.tensors().map((t) => ({ ...t, dtype: 'F32' as const })), { format: 'pt' }));
  const json = { model_type: 'gpt2', n_layer: cfg.nLayer, n_head: cfg.nHead, n_embd: cfg.dModel, n_positions: cfg.nCtx, n_ctx: cfg.nCtx, vocab_size: cfg.vocabSize, layer_norm_epsilon: cfg.eps, activation_function: 'gelu_new' };
  fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify(json));
  return d;
}

beforeAll(async () => {
  ensureBuilt();
  const bt = await byteTokens();
  dir = writeControlModel(bt.byteIds);
  ids = BYTES.map((b) => bt.byteIds[b]);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Raw control characters (other than the layout's newlines), and U+FFFD, which is what a lone surrogate becomes on the way out. */
function rawControls(s: string): string[] {
  return Array.from(s.matchAll(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\ufffd]/gu), (m) => `U+${m[0].codePointAt(0)!.toString(16).padStart(4, '0')}`);
}

test('sp lens: the table shows control-byte tokens readably, never raw', () => {
  const r = sp(['lens', '--model', dir, '--ids', ids.join(',')]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(rawControls(r.stdout)).toEqual([]);
  const lines = r.stdout.trimEnd().split('\n');
  expect(lines).toHaveLength(4); // header, layers 2, 1, embed
  expect(lines[0]).toMatch(/^layer\s+0 "\\u001b"\s+1 "\\u0000"\s+2 "\\u007f"\s+3 "\\f"\s+4 "\\r"\s+5 "\\b"\s+6 "\\udc9b"\s+7 "\\udce3"$/);
  for (const l of lines.slice(1)) expect(l).toMatch(/^\S+\s+(␛ 0\.\d\d\s+){7}␛ 0\.\d\d$/); // ESC is every cell's top-1
  // --json stays raw: JSON escapes the characters itself
  const j = JSON.parse(sp(['lens', '--model', dir, '--ids', ids.join(','), '--topk', '8', '--json']).stdout) as { tokens: string[]; layers: Array<{ positions: Array<{ top: Array<{ token: string }> }> }> };
  expect(j.tokens.slice(0, 6)).toEqual(['\u001b', '\u0000', '\u007f', '\f', '\r', '\b']);
  expect(j.layers[2].positions[0].top.map((t) => t.token).slice(0, 3)).toEqual(['\u001b', '\u0000', '\u007f']);
});

test('sp lens --svg/--png/--html with control-byte top tokens: exit 0, valid XML, readable tokens', () => {
  const [svg, png, html] = ['g.svg', 'g.png', 'r.html'].map((f) => path.join(dir, f));
  const r = sp(['lens', '--model', dir, '--ids', ids.join(','), '--topk', '8', '--svg', svg, '--png', png, '--html', html]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const s = fs.readFileSync(svg, 'utf8');
  expect(badXmlChars(s)).toEqual([]);
  expect(s).toContain('>␛</text>');
  for (const label of ['0 ␛', '1 ␀', '2 ␡', '3 ␌', '4 ␍', '5 ␈', '6 \\x9b', '7 \\xe3']) expect(s).toContain(`>${label}</text>`);
  expect(fs.readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
  const page = fs.readFileSync(html, 'utf8');
  const vega = page.indexOf('<script>');
  expect(badXmlChars(page.slice(0, vega) + page.slice(page.indexOf('</script>', vega)))).toEqual([]);
});

test('sp rank (rankings and --watch): control-byte tokens readable, never raw', () => {
  const r = sp(['rank', '--model', dir, '--ids', ids.join(',')]);
  expect(r.status).toBe(0);
  expect(rawControls(r.stdout)).toEqual([]);
  expect(r.stdout.split('\n')[1]).toMatch(/^layer\s+␀\s+␡\s+␌\s+␍\s+␈\s+\\x9b\s+\\xe3\s+␛\*$/);
  const w = sp(['rank', '--model', dir, '--ids', ids.join(','), '--watch-ids', ids.slice(0, 3).join(','), '--svg', path.join(dir, 'w.svg'), '--png', path.join(dir, 'w.png')]);
  expect(w.stderr).toBe('');
  expect(w.status).toBe(0);
  expect(rawControls(w.stdout)).toEqual([]);
  expect(w.stdout.split('\n')[1]).toMatch(/^layer\s+"\\u001b"\s+"\\u0000"\s+"\\u007f"$/);
  expect(badXmlChars(fs.readFileSync(path.join(dir, 'w.svg'), 'utf8'))).toEqual([]);
});

test('sp generate and sp probe: generated control characters are escaped, newlines kept', () => {
  const g = sp(['generate', '--model', dir, '--ids', ids.slice(6).join(','), '--max-new-tokens', '4']);
  expect(g.status).toBe(0);
  expect(rawControls(g.stdout)).toEqual([]);
  expect(g.stdout).toContain('␛'); // the greedy continuation starts with ESC
  const j = JSON.parse(sp(['generate', '--model', dir, '--ids', ids.slice(6).join(','), '--max-new-tokens', '4', '--json']).stdout) as { text: string };
  expect(j.text.startsWith('\u001b')).toBe(true);

  const html = path.join(dir, 'p.html');
  const p = sp(['probe', '--model', dir, '--prompt', 'A\n"<neuron>" means', '--neuron', '0,1', '--greedy', '--max-new-tokens', '6', '--top', '5', '--html', html]);
  expect(p.stderr).toMatch(/tokens\/s/);
  expect(p.status).toBe(0);
  expect(rawControls(p.stdout)).toEqual([]);
  expect(p.stdout.startsWith('A\n"<neuron>" means␛')).toBe(true); // the template's newline stays a line break
  const page = fs.readFileSync(html, 'utf8');
  const vega = page.indexOf('<script>');
  expect(badXmlChars(page.slice(0, vega) + page.slice(page.indexOf('</script>', vega)))).toEqual([]);
});
