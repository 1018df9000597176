import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode as r50kEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { GPT2Tokenizer } from '../../src/tokenizer/index.js';
import { SpError } from '../../src/errors.js';
// @ts-expect-error -- plain .mjs build script, no type declarations
import { buildTokenizerJson } from '../../scripts/build-gpt2-tokenizer.mjs';

const ASSET = fileURLToPath(new URL('../../assets/gpt2-tokenizer.json', import.meta.url));
const EOT = '<|endoftext|>';

/**
 * tiktoken semantics with `<|endoftext|>` allowed: split on it, BPE-encode each piece, join with 50256.
 * (gpt-tokenizer 4.0.0's own `allowedSpecial` only finds a special token at the very start of the
 * remaining text -- its special-token regex is sticky -- so we split here instead.)
 */
const reference = (text: string): number[] =>
  text.split(EOT).flatMap((piece, i) => (i === 0 ? r50kEncode(piece) : [50256, ...r50kEncode(piece)]));

const CORPUS: string[] = [
  '',
  'Hello world',
  'The capital of France is',
  'The quick brown fox jumps over the lazy dog.',
  // unicode
  'café naïve résumé Ångström façade señor Straße',
  'Ελληνικά русский язык עברית العربية हिन्दी',
  '日本語のテキストと中文字符 한국어',
  'emoji 😀👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✨',
  'e\u0301 a\u0300\u0323 n\u0303 combining: Z\u0351\u0337a\u0362l\u0360g\u0350o\u0338',
  '\u00a0non-breaking\u00a0space\u2003em\u2003space\u200bzero-width',
  // whitespace runs
  'a  b   c    d',
  '    leading spaces',
  'trailing spaces   ',
  'tabs\there\t\tand\t\t\tthere',
  'line1\nline2\n\nline4\n\n\n',
  '\r\nwindows\r\nnewlines\r\n',
  ' \t \n mixed \n\t whitespace \t\n ',
  '   ',
  '\n',
  ' ',
  // numbers
  '0 1 12 123 1234 12345 123456789 3.14159 -42 1e10 0x1F 1,000,000',
  '2024-01-15T10:30:00Z $19.99 50% #1',
  // contractions
  "I'm you're we've he'll she'd it's don't can't won't",
  "IT'S HE'S SHE'S I'M YOU'RE WE'VE THEY'LL I'D",
  "O'Neil's rock'n'roll 'quoted' ''double'' 's 't 're 've 'm 'll 'd",
  // punctuation
  'Hello, world! How are you? I\'m fine... (really) [yes] {no} <maybe>',
  '—– “smart quotes” ‘single’ «guillemets» … • · ¿¡',
  '!!!???...,,,;;;:::---___***&&&%%%$$$###@@@',
  // code
  'function add(a, b) {\n  return a + b;\n}\n',
  'def f(x):\n    if x > 0:\n        return x ** 2\n    return None\n',
  'const re = /^[a-z]+$/gi; // comment\nconsole.log(`${x}`);',
  '<div class="foo">bar</div>\n<script>alert("hi")</script>',
  '{"key": [1, 2, 3], "nested": {"a": null, "b": true}}',
  'SELECT * FROM users WHERE id = 1;',
  // special token
  `first document${EOT}second document`,
  `${EOT}`,
  `${EOT}${EOT}`,
  `text ${EOT} more text ${EOT}`,
  `${EOT}\n\nNew doc`,
  '<|endoftext| almost <|endoftext> not <|endof',
];

/** mulberry32: tiny seeded PRNG so the random corpus is the same every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET: string[] = [
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
  ...'     \t\n\r',
  ...".,;:!?'\"`-_()[]{}<>/\\|@#$%^&*+=~",
  ...'éèêëàçñöüßÅøœ',
  ...'日本語中文字한국',
  '😀', '👍🏽', '🇫🇷', '\u0301', '\u0308', '\u00a0', '\u200b',
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S",
  'the', ' the', 'ing', '  ', '\n\n', EOT,
];

function randomCorpus(n: number, seed: number): string[] {
  const rnd = mulberry32(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = Math.floor(rnd() * 40);
    let s = '';
    for (let j = 0; j < len; j++) s += ALPHABET[Math.floor(rnd() * ALPHABET.length)];
    out.push(s);
  }
  return out;
}

const RANDOM = randomCorpus(400, 0x5eed);

let tok: GPT2Tokenizer;
beforeAll(async () => {
  tok = await GPT2Tokenizer.gpt2();
});

describe('GPT2Tokenizer (bundled)', () => {
  test('vocab size and eos', () => {
    expect(tok.vocabSize).toBe(50257);
    expect(tok.eosTokenId).toBe(50256);
  });

  test('matches gpt-tokenizer r50k_base on the handwritten corpus', () => {
    for (const text of CORPUS) {
      expect({ text, ids: tok.encode(text) }).toEqual({ text, ids: reference(text) });
    }
  });

  test('matches gpt-tokenizer r50k_base on seeded random strings', () => {
    for (const text of RANDOM) {
      expect({ text, ids: tok.encode(text) }).toEqual({ text, ids: reference(text) });
    }
  });

  test('decode(encode(x)) === x', () => {
    for (const text of [...CORPUS, ...RANDOM]) expect(tok.decode(tok.encode(text))).toBe(text);
  });

  test('known ids', () => {
    expect(tok.encode('The capital of France is')).toEqual([464, 3139, 286, 4881, 318]);
    expect(tok.encode('1, 1, 1,')).toEqual([16, 11, 352, 11, 352, 11]);
    expect(tok.encode('The term "')).toEqual([464, 3381, 366]);
    expect(tok.encode('" means')).toEqual([1, 1724]);
    expect(tok.encode(EOT)).toEqual([50256]);
    expect(tok.encode('')).toEqual([]);
  });

  test('tokenString', () => {
    expect(tok.tokenString(262)).toBe(' the');
    expect(tok.tokenString(318)).toBe(' is');
    expect(tok.tokenString(50256)).toBe(EOT);
    expect(tok.tokenString(0)).toBe('!');
  });

  test('tokenId', () => {
    expect(tok.tokenId(' is')).toBe(318);
    expect(tok.tokenId(' the')).toBe(262);
    expect(tok.tokenId('The')).toBe(464);
    expect(tok.tokenId(EOT)).toBe(50256);
    expect(tok.tokenId(' is are')).toBeUndefined();
    expect(tok.tokenId('')).toBeUndefined();
    expect(tok.tokenId('\ud800')).toBeUndefined();
    for (const id of [1, 11, 220, 262, 318, 628, 1724, 4881, 50255]) expect(tok.tokenId(tok.tokenString(id))).toBe(id);
  });

  test('out-of-range ids throw SpError OUT_OF_RANGE', () => {
    for (const bad of [-1, 50257, 1e9, 1.5, NaN]) {
      expect(() => tok.tokenString(bad)).toThrow(SpError);
      expect(() => tok.decode([1, bad])).toThrow(expect.objectContaining({ code: 'OUT_OF_RANGE' }));
    }
  });

  test('gpt2() is loaded once and shared', async () => {
    const again = await GPT2Tokenizer.gpt2();
    expect(again).toBe(tok);
    expect(again.encode('The capital of France is')).toEqual([464, 3139, 286, 4881, 318]);
    expect(again.vocabSize).toBe(50257);
  });
});

describe('bundled asset', () => {
  test('regenerating with the build script is byte-identical to the committed file', async () => {
    const committed = await readFile(ASSET, 'utf8');
    const rebuilt: string = buildTokenizerJson();
    expect(rebuilt.length).toBe(committed.length);
    expect(rebuilt === committed).toBe(true);
  });
});

describe('GPT2Tokenizer.fromDir', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sp-tokenizer-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('uses dir/tokenizer.json when present', async () => {
    const d = join(dir, 'with-json');
    await mkdir(d);
    // A recognisably different tokenizer: the bundled one with an extra added token.
    const json = JSON.parse(await readFile(ASSET, 'utf8'));
    json.added_tokens.push({ id: 50257, content: '<|pad|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    await writeFile(join(d, 'tokenizer.json'), JSON.stringify(json));
    const t = await GPT2Tokenizer.fromDir(d, 1000);
    expect(t.vocabSize).toBe(50258);
    expect(t.eosTokenId).toBe(50256);
    expect(t.encode('a<|pad|>b')).toEqual([64, 50257, 65]);
    expect(t.encode('The capital of France is')).toEqual([464, 3139, 286, 4881, 318]);
  });

  test('a plain copy of the bundled file works', async () => {
    const d = join(dir, 'copy');
    await mkdir(d);
    await copyFile(ASSET, join(d, 'tokenizer.json'));
    const t = await GPT2Tokenizer.fromDir(d, 50257);
    expect(t.encode(`hi${EOT}`)).toEqual([5303, 50256]);
  });

  test('falls back to the bundled GPT-2 tokenizer for vocabSize 50257', async () => {
    const t1 = await GPT2Tokenizer.fromDir(dir, 50257);
    const t2 = await GPT2Tokenizer.fromDir(undefined, 50257);
    expect(t1.encode('The term "')).toEqual([464, 3381, 366]);
    expect(t2.vocabSize).toBe(50257);
  });

  test('no tokenizer.json and a non-GPT-2 vocab -> SpError NOT_FOUND', async () => {
    await expect(GPT2Tokenizer.fromDir(dir, 1000)).rejects.toMatchObject({ name: 'SpError', code: 'NOT_FOUND' });
    await expect(GPT2Tokenizer.fromDir(undefined, 1000)).rejects.toBeInstanceOf(SpError);
    await expect(GPT2Tokenizer.fromDir(join(dir, 'missing-dir'), 1000)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  test('corrupt tokenizer.json -> SpError BAD_FILE', async () => {
    const d = join(dir, 'corrupt');
    await mkdir(d);
    const path = join(d, 'tokenizer.json');
    await writeFile(path, '{"model": {"type": "BPE", "vocab": {"a": 0');
    const err = await GPT2Tokenizer.fromDir(d, 50257).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpError);
    expect(err).toMatchObject({ code: 'BAD_FILE' });
    expect((err as Error).message).toContain(`cannot parse ${path}`);
    expect((err as Error).message).not.toContain('\n');

    await writeFile(path, '{"not": "a tokenizer"}');
    await expect(GPT2Tokenizer.fromDir(d, 50257)).rejects.toMatchObject({ code: 'BAD_FILE' });
  });
});
