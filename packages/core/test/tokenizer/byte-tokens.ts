/**
 * GPT-2's single-byte tokens (one per byte value, control bytes included) and a sample of tokens
 * that are partial UTF-8, found from the bundled tokenizer.json with an independent copy of
 * OpenAI's bytes_to_unicode table; their strings are what @sp/core puts into results.
 */
import fs from 'node:fs';
import path from 'node:path';
import { GPT2Tokenizer } from '@sp/core';
import { repoRoot } from '../helpers/fixtures.js';

/** `bytes_to_unicode` from OpenAI's encoder.py, written out again. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i])));
  return table;
}

export interface ByteTokens {
  tok: GPT2Tokenizer;
  /** byteIds[b]: the id of the token that is exactly byte b. */
  byteIds: number[];
  /** Tokens (above 255) whose bytes are not valid UTF-8, e.g. half of a CJK character. */
  partialIds: number[];
  /** Every vocabulary entry's bytes, by id. */
  bytes: Map<number, Uint8Array>;
}

export async function byteTokens(): Promise<ByteTokens> {
  const json = JSON.parse(fs.readFileSync(path.join(repoRoot, 'packages/core/assets/gpt2-tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  const vocab = json.model.vocab;
  const b2u = bytesToUnicode();
  const u2b = new Map(b2u.map((c, b) => [c, b]));
  const byteIds = b2u.map((c) => vocab[c]);
  const strict = new TextDecoder('utf-8', { fatal: true });
  const partialIds: number[] = [];
  const all = new Map<number, Uint8Array>();
  for (const [sym, id] of Object.entries(vocab)) {
    const bytes = Uint8Array.from(Array.from(sym, (c) => u2b.get(c)!));
    all.set(id, bytes);
    if (id < 256) continue;
    try {
      strict.decode(bytes);
    } catch {
      partialIds.push(id);
    }
  }
  partialIds.sort((a, b) => a - b);
  return { tok: await GPT2Tokenizer.gpt2(), byteIds, partialIds, bytes: all };
}

/**
 * Characters that may not appear in an XML 1.0 document (the `Char` production), plus the C1
 * controls and DEL, which XML allows but which no one can read; lone surrogates count too.
 */
export function badXmlChars(s: string): string[] {
  const bad: string[] = [];
  for (const c of s) {
    const cp = c.codePointAt(0)!;
    const ok = cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp < 0x7f) || (cp > 0x9f && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || cp >= 0x10000;
    if (!ok) bad.push(`U+${cp.toString(16).toUpperCase().padStart(4, '0')}`);
  }
  return bad;
}
