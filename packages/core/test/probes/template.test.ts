/** The speaking-probe tokenization rule, the expression language, vector files, the prompt library. */
import fs from 'node:fs';
import path from 'node:path';
import gpt3 from 'gpt-3-encoder';
import {
  GPT2Tokenizer, PLACEHOLDER_ID, listPrompts, loadPrompt, parseExpr, parseJsonVector, parseNpy, parseTemplate, readPromptFile, readVectorFile,
  renderTemplate, tokenizeTemplate, writeSafetensors, formatExpr, parseNeuronSpec,
} from '@sp/core';
import { golden, tmpDir } from '../helpers/fixtures.js';

let tok: GPT2Tokenizer;
beforeAll(async () => {
  tok = await GPT2Tokenizer.gpt2();
});
const ids = (t: string) => tokenizeTemplate(parseTemplate(t), (s) => tok.encode(s));
/** The original's rule, written independently: insert ' ' before a tag not preceded by one, then split on ' <tag>'. */
function original(t: string): { ids: number[]; positions: number[] } {
  const pre = t.replace(/([^ ]|^)(<neuron\d*>|<param_\d+_\d+>)/g, (_, a, b) => `${a} ${b}`);
  const pieces = pre.split(/ (<neuron\d*>|<param_\d+_\d+>)/);
  const out: number[] = [];
  const positions: number[] = [];
  pieces.forEach((p, i) => {
    if (i % 2 === 1) {
      positions.push(out.length);
      out.push(0);
    } else if (p) out.push(...(gpt3.encode(p) as number[]));
  });
  return { ids: out, positions };
}

describe('template tokenization', () => {
  test('the golden speaking-probe layout: \'The term "\' | virtual | \'" means\'', () => {
    const g = golden('tiny-gpt2').cases.find((c) => c.name === 'term-means-param-1-5')!;
    const r = ids('The term "<neuron>" means');
    expect(r.ids).toEqual(g.ids);
    expect(r.virtual.map((v) => v.position)).toEqual([g.inject![0]]);
    expect(r.ids[3]).toBe(PLACEHOLDER_ID);
  });

  test.each([
    'The term "<neuron>" means',
    'What does <neuron> mean?',
    'The term <neuron> is a broad term related to',
    "The invented word ' <neuron>' is a combination of the words",
    "// related to <neuron>\nrelated_strings = [' <neuron>',",
    '<neuron> is',
    'A <neuron><neuron2> and <param_10_8>  <neuron>.',
    'x  <neuron>',
  ])('%j matches the original implementation (tokenized by gpt-3-encoder)', (t) => {
    const r = ids(t);
    const o = original(t);
    expect(r.ids).toEqual(o.ids);
    expect(r.virtual.map((v) => v.position)).toEqual(o.positions);
  });

  test('hand-checked pieces: one space before a tag belongs to the virtual token', () => {
    expect(ids('What does <neuron> mean?').ids).toEqual([2061, 857, 0, 1612, 30]);
    expect(ids('x  <neuron>').ids).toEqual([...tok.encode('x '), 0]);
    const parts = parseTemplate('A <neuron2> b <param_3_14>');
    expect(parts.map((p) => p.text ?? p.tag!.tag)).toEqual(['A', '<neuron2>', ' b', '<param_3_14>']);
    expect(parts[1].tag).toEqual({ tag: '<neuron2>', kind: 'neuron', neuron: 1 });
    expect(parts[3].tag).toEqual({ tag: '<param_3_14>', kind: 'param', layer: 3, index: 14 });
    expect(renderTemplate(parseTemplate('The term "<neuron>" means'))).toBe('The term " <neuron>" means');
    expect(parseTemplate('<neuron1>')[0].tag).toEqual({ tag: '<neuron1>', kind: 'neuron', neuron: 0 });
  });

  test('bad templates', () => {
    expect(() => parseTemplate('no tag here')).toThrow(/no virtual-token tag/);
    expect(() => parseTemplate('<neuron0>')).toThrow(/numbered from 1/);
    expect(() => parseTemplate('<Neuron>')).toThrow(/no virtual-token tag/);
  });
});

describe('token-embedding expressions', () => {
  const id = (s: string) => tok.tokenId(s);
  test('bare words are the token with a leading space; ids agree with gpt-3-encoder', () => {
    const t = parseExpr('0.9*google + show', id, 50257);
    expect(t).toEqual([
      { coef: 0.9, atom: { kind: 'token', id: gpt3.encode(' google')[0], token: ' google' } },
      { coef: 1, atom: { kind: 'token', id: gpt3.encode(' show')[0], token: ' show' } },
    ]);
    expect(t[0].atom).toMatchObject({ id: 23645 });
    expect(parseExpr('children + dog', id, 50257).map((x) => (x.atom as { id: number }).id)).toEqual([1751, 3290]);
  });

  test('quotes, ids, signs, trailing coefficients, FF keys/values', () => {
    const t = parseExpr("-'google' + \" Google\"*2 - 0.5*#464 + key(10,8) - 1e-1*value(0,3)", id, 50257);
    expect(t.map((x) => x.coef)).toEqual([-1, 2, -0.5, 1, -0.1]);
    expect(t[0].atom).toEqual({ kind: 'token', id: tok.tokenId('google'), token: 'google' });
    expect(t[1].atom).toEqual({ kind: 'token', id: tok.tokenId(' Google'), token: ' Google' });
    expect(t[2].atom).toEqual({ kind: 'token', id: 464, token: '' });
    expect(t[3].atom).toEqual({ kind: 'key', layer: 10, index: 8 });
    expect(t[4].atom).toEqual({ kind: 'value', layer: 0, index: 3 });
    expect(formatExpr(parseExpr('0.9*google + show', id, 50257), (i) => tok.tokenString(i))).toBe("0.9*' google' + ' show'");
  });

  test('errors are one line and name the problem', () => {
    const bad: Array<[string, RegExp]> = [
      ['0.9*googlezzqx', /unknown token googlezzqx/],
      ['children +', /unexpected end/],
      ['children dog', /expected \+ or -/],
      ['0.9 google', /expected "\*"/],
      ['"unterminated', /unterminated/],
      ['#99999', /out of range/],
      ['', /empty/],
      ['key(1.5,2)', /not an integer/],
      ['a ; b', /unexpected ";"/],
    ];
    for (const [e, re] of bad) {
      let err: Error | undefined;
      try {
        parseExpr(e, id, 50257);
      } catch (x) {
        err = x as Error;
      }
      expect(err?.name).toBe('SpError');
      expect(err!.message).toMatch(re);
      expect(err!.message).not.toContain('\n');
    }
  });

  test('neuron spec strings', () => {
    expect(parseNeuronSpec('10,8')).toEqual({ type: 'key', layer: 10, index: 8 });
    expect(parseNeuronSpec('key: 10, 8')).toEqual({ type: 'key', layer: 10, index: 8 });
    expect(parseNeuronSpec('value:0,3')).toEqual({ type: 'value', layer: 0, index: 3 });
    expect(parseNeuronSpec('file:/a/b.npy')).toEqual({ type: 'file', path: '/a/b.npy' });
    expect(parseNeuronSpec('expr:0.9*google+show')).toEqual({ type: 'expr', expr: '0.9*google+show' });
    expect(parseNeuronSpec('hidden:3,-1:The cat: a pet')).toEqual({ type: 'hidden', layer: 3, position: -1, prompt: 'The cat: a pet' });
    expect(() => parseNeuronSpec('10')).toThrow(/LAYER,INDEX/);
    expect(() => parseNeuronSpec('bias:1,2')).toThrow(/unknown neuron source "bias:"/);
  });
});

describe('vector files', () => {
  const dir = tmpDir('sp-vec-');
  const npy = (descr: string, shape: string, data: Buffer, major = 1): Buffer => {
    let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
    const pre = major === 1 ? 10 : 12;
    header += ' '.repeat(63 - ((pre + header.length) % 64)) + '\n';
    const head = Buffer.alloc(pre);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]).copy(head);
    if (major === 1) head.writeUInt16LE(header.length, 8);
    else head.writeUInt32LE(header.length, 8);
    return Buffer.concat([head, Buffer.from(header, 'latin1'), data]);
  };
  const f32 = (v: number[]) => Buffer.from(new Float32Array(v).buffer);
  const f64 = (v: number[]) => Buffer.from(new Float64Array(v).buffer);

  test('npy float32 / float64, format 1.0 and 2.0', () => {
    expect(Array.from(parseNpy(npy('<f4', '(3,)', f32([1.5, -2, 0.25]))))).toEqual([1.5, -2, 0.25]);
    expect(Array.from(parseNpy(npy('<f8', '(2,)', f64([0.1, 3]), 2)))).toEqual([Math.fround(0.1), 3]);
    const p = path.join(dir, 'v.npy');
    fs.writeFileSync(p, npy('<f4', '(2,)', f32([7, 8])));
    expect(Array.from(readVectorFile(p))).toEqual([7, 8]);
  });

  test('npy strictness: dtype, rank, byte order, truncation, magic', () => {
    expect(() => parseNpy(npy('>f4', '(2,)', f32([1, 2])))).toThrow(/'>f4' is not supported/);
    expect(() => parseNpy(npy('<i4', '(2,)', f32([1, 2])))).toThrow(/not supported/);
    expect(() => parseNpy(npy('<f4', '(1, 2)', f32([1, 2])))).toThrow(/1-D/);
    expect(() => parseNpy(npy('<f4', '(3,)', f32([1, 2])))).toThrow(/expected 12 data bytes/);
    expect(() => parseNpy(Buffer.from('PK\x03\x04 not numpy'))).toThrow(/bad magic/);
  });

  test('JSON and safetensors', () => {
    expect(Array.from(parseJsonVector('[1, 2.5]'))).toEqual([1, 2.5]);
    expect(Array.from(parseJsonVector('{"vector": [3]}'))).toEqual([3]);
    expect(() => parseJsonVector('[[1, 2]]')).toThrow(/flat array/);
    expect(() => parseJsonVector('{')).toThrow(/not valid JSON/);
    const one = path.join(dir, 'one.safetensors');
    writeSafetensors(one, [{ name: 'v', shape: [3], data: [1, 2, 3] }]);
    expect(Array.from(readVectorFile(one))).toEqual([1, 2, 3]);
    const two = path.join(dir, 'two.safetensors');
    writeSafetensors(two, [{ name: 'a', shape: [2], data: [1, 2] }, { name: 'b', shape: [2, 1], data: [3, 4] }]);
    expect(() => readVectorFile(two)).toThrow(/holds 2 tensors: pick one/);
    expect(Array.from(readVectorFile(`${two}#a`))).toEqual([1, 2]);
    expect(() => readVectorFile(`${two}#b`)).toThrow(/expected a 1-D vector/);
    expect(() => readVectorFile(`${two}#zz`)).toThrow(/not found/);
    expect(() => readVectorFile(path.join(dir, 'missing.npy'))).toThrow(/not found/);
    const txt = path.join(dir, 'v.txt');
    fs.writeFileSync(txt, '1 2');
    expect(() => readVectorFile(txt)).toThrow(/unknown vector format/);
    const nan = path.join(dir, 'nan.npy');
    fs.writeFileSync(nan, npy('<f4', '(2,)', f32([1, NaN])));
    expect(() => readVectorFile(nan)).toThrow(/element 1 is not a finite number/);
  });
});

describe('prompt library', () => {
  test('ships the article and repository prompts, each with at least one tag', () => {
    const all = listPrompts();
    const names = all.map((p) => p.name);
    for (const n of ['term-means', 'synonyms', 'synonyms-lowercase', 'broad-term', 'wikipedia', 'invented-word', 'meaning', 'connotations', 'new-word-blend', 'list-of-related']) {
      expect(names).toContain(n);
    }
    for (const p of all) {
      expect(p.bundled).toBe(true);
      expect(p.description).toBeTruthy();
      expect(parseTemplate(p.template).some((x) => x.tag)).toBe(true);
    }
    expect(loadPrompt('term-means').template).toBe('The term "<neuron>" means');
    expect(loadPrompt('wikipedia').template).toBe('From Wikipedia: "<neuron> is');
    expect(loadPrompt('synonyms').template.split('\n')).toHaveLength(6);
    expect(() => loadPrompt('nope')).toThrow(/no prompt named "nope" \(available: .*term-means/);
  });

  test('user directories add prompts and shadow bundled ones; a trailing newline is ignored', () => {
    const dir = tmpDir('sp-prompts-');
    fs.writeFileSync(path.join(dir, 'mine.txt'), 'My <neuron> is\n');
    fs.writeFileSync(path.join(dir, 'term-means.txt'), 'Overridden <neuron>');
    expect(loadPrompt('mine', [dir])).toMatchObject({ template: 'My <neuron> is', bundled: false });
    expect(loadPrompt('term-means', [dir]).template).toBe('Overridden <neuron>');
    expect(loadPrompt('meaning', [dir]).bundled).toBe(true);
    expect(readPromptFile(path.join(dir, 'mine.txt'))).toBe('My <neuron> is');
    expect(() => listPrompts([path.join(dir, 'nope')])).toThrow(/does not exist/);
  });
});
