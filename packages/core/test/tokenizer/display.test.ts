/**
 * Every token can be shown: tokenString keeps each token's bytes (a lone UTF-8 byte as U+DC00+byte),
 * and displayToken / quoteToken / displayText give printable, XML-valid text for all 50,257 tokens,
 * distinct for every token of GPT-2's vocabulary.
 */
import { displayText, displayToken, joinTokens, quoteToken } from '@sp/core';
import { badXmlChars, byteTokens, type ByteTokens } from './byte-tokens.js';

let bt: ByteTokens;
beforeAll(async () => {
  bt = await byteTokens();
});

/** Characters that do not show as themselves: controls, format characters, separators, lone surrogates, noncharacters. */
const unprintable = (s: string) => s.match(/[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\p{Noncharacter_Code_Point}]/gu) ?? [];

/** tokenString's text back to bytes: U+DC80–U+DCFF are single bytes, everything else UTF-8. */
function escapedBytes(s: string): number[] {
  const out: number[] = [];
  for (const c of s) {
    const cp = c.codePointAt(0)!;
    if (cp >= 0xdc80 && cp <= 0xdcff) out.push(cp - 0xdc00);
    else out.push(...new TextEncoder().encode(c));
  }
  return out;
}

test('the 256 byte tokens: displayToken is non-empty, printable, valid XML and distinct for each byte', () => {
  const shown = bt.byteIds.map((id) => displayToken(bt.tok.tokenString(id)));
  for (const s of shown) {
    expect(s.length).toBeGreaterThan(0);
    expect(unprintable(s)).toEqual([]);
    expect(badXmlChars(s)).toEqual([]);
    expect(s.trim()).toBe(s); // no invisible whitespace at either end
  }
  expect(new Set(shown).size).toBe(256);
  // readable forms: Control Pictures for C0 and DEL, \xNN for the bytes that are not UTF-8 alone
  expect(shown[0x00]).toBe('␀');
  expect(shown[0x1b]).toBe('␛');
  expect(shown[0x0c]).toBe('␌');
  expect(shown[0x0a]).toBe('↵');
  expect(shown[0x09]).toBe('⇥');
  expect(shown[0x0d]).toBe('␍');
  expect(shown[0x20]).toBe('␣');
  expect(shown[0x7f]).toBe('␡');
  expect(shown[0x41]).toBe('A');
  for (let b = 0x80; b < 0x100; b++) expect(shown[b]).toBe(`\\x${b.toString(16)}`);
});

test('tokenString keeps every token\'s bytes; it equals Hugging Face\'s decode wherever the bytes are valid UTF-8', () => {
  const lossy = new TextDecoder('utf-8'); // WHATWG replacement: one U+FFFD per maximal invalid subpart, as Rust's from_utf8_lossy
  let escaped = 0;
  const wrong: string[] = []; // collected, not one expect per token: 50,257 tokens
  for (let id = 0; id < bt.tok.vocabSize; id++) {
    const s = bt.tok.tokenString(id);
    const bytes = bt.bytes.get(id)!;
    const hf = bt.tok.decode([id]);
    if (escapedBytes(s).join() !== bytes.join()) wrong.push(`${id}: bytes of ${JSON.stringify(s)}`);
    if (hf !== lossy.decode(bytes)) wrong.push(`${id}: HF decode ${JSON.stringify(hf)}`);
    if (/[\udc80-\udcff]/.test(s)) escaped++;
    else if (s !== hf) wrong.push(`${id}: ${JSON.stringify(s)} is not HF's ${JSON.stringify(hf)}`);
    if (bt.tok.tokenId(s) !== id) wrong.push(`${id}: tokenId(${JSON.stringify(s)}) = ${bt.tok.tokenId(s)}`); // one string per token, and back
  }
  expect(wrong).toEqual([]);
  expect(escaped).toBe(128 + bt.partialIds.length);
  expect(bt.partialIds.length).toBeGreaterThan(100);
  expect(bt.tok.tokenString(bt.byteIds[0xe3])).toBe('\udce3');
  expect(bt.tok.tokenId('\ud800')).toBeUndefined(); // a lone surrogate that is not an escaped byte
});

test('all 50,257 tokens: displayToken and quoteToken are printable and valid XML; quoteToken is JSON for the exact string', () => {
  const seen = new Set<string>();
  for (let id = 0; id < bt.tok.vocabSize; id++) {
    const t = bt.tok.tokenString(id);
    const shown = displayToken(t);
    seen.add(shown);
    if (shown.length === 0 || unprintable(shown).length || badXmlChars(shown).length) throw new Error(`token ${id} ${JSON.stringify(t)} shows as ${JSON.stringify(shown)}`);
    const q = quoteToken(t);
    if (unprintable(q).length || badXmlChars(q).length || JSON.parse(q) !== t) throw new Error(`token ${id} ${JSON.stringify(t)} quotes as ${JSON.stringify(q)}`);
  }
  expect(seen.size).toBe(bt.tok.vocabSize); // GPT-2's vocabulary has no two tokens that look the same
  // partial UTF-8 tokens: the valid part as text, the lone bytes as \xNN
  const withHalf = bt.partialIds.map((id) => displayToken(bt.tok.tokenString(id)));
  expect(new Set(withHalf).size).toBe(withHalf.length);
  for (const s of withHalf) expect(s).toMatch(/\\x[89a-f][0-9a-f]/);
});

test('joinTokens: tokens that split a character spell it again', () => {
  const text = ' 日本語の文字は読める';
  const toks = bt.tok.encode(text).map((id) => bt.tok.tokenString(id));
  expect(toks.filter((t) => /[\udc80-\udcff]/.test(t)).length).toBeGreaterThan(2); // some tokens hold part of a character
  expect(joinTokens(toks)).toBe(text);
  expect(joinTokens(['a', '\udce6\udc97'])).toBe('a\udce6\udc97'); // still incomplete: stays escaped
  expect(displayToken(joinTokens(['\udce6\udc97', '\udca5', '\udce6']))).toBe('日\\xe6');
});

test('displayToken, quoteToken and displayText on hand-picked strings', () => {
  expect(displayToken(' the')).toBe(' the');
  expect(displayToken('\n\n')).toBe('↵↵');
  expect(displayToken('  ')).toBe('␣␣');
  expect(displayToken('\u00a0')).toBe('\\u00a0'); // an all-whitespace token must not vanish
  expect(displayToken('\u001b[31m')).toBe('␛[31m');
  expect(displayToken('a\u0085b')).toBe('a\\u0085b'); // C1 (the character, not a lone byte)
  expect(displayToken('\u202eabc')).toBe('\\u202eabc'); // a bidi override would reorder what follows
  expect(displayToken('x\ufffe\uffff')).toBe('x\\ufffe\\uffff');
  expect(displayToken('\ud800')).toBe('\\ud800');
  expect(displayToken('\udce3\udc81')).toBe('\\xe3\\x81');
  expect(displayToken('�')).toBe('�'); // a real U+FFFD token is printable
  expect(quoteToken('\u001b\u007f\u0085"\\\n\udce3')).toBe('"\\u001b\\u007f\\u0085\\"\\\\\\n\\udce3"');
  expect(quoteToken('\u{e0001}')).toBe('"\\udb40\\udc01"');
  expect(JSON.parse(quoteToken('\u{e0001}'))).toBe('\u{e0001}');
  expect(displayText('line 1\n\tline 2\r\u001b[2J\u0007')).toBe('line 1\n\tline 2␍␛[2J␇');
});
