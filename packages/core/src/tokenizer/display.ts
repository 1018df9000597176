/**
 * How tokens and texts are shown to people (tables, charts, terminals). GPT-2 has a token for every
 * byte, so a token may be NUL, ESC, DEL, a C1 control or a lone byte of a UTF-8 sequence (which
 * `tokenString` gives as a lone surrogate U+DC80–U+DCFF, Python's "surrogateescape"). None of these
 * may reach a terminal raw (ESC starts escape sequences) or an SVG (XML forbids most controls).
 *
 * Plain string functions with no dependencies, so `@sp/core/light` can export them too.
 */

/**
 * Characters nobody can read, that XML forbids, or that change how the text around them shows:
 * controls (C0, DEL, C1), format characters (soft hyphen, zero-width, bidi overrides, BOM), line and
 * paragraph separators, lone surrogates and noncharacters (U+FFFE, U+FFFF, …).
 */
const UNSHOWABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\p{Noncharacter_Code_Point}]/gu;

const utf8 = new TextEncoder();

/**
 * UTF-8 bytes as text, each byte that is not part of a valid sequence as the lone surrogate
 * U+DC00+byte (Python's "surrogateescape"), so that no two byte strings give the same text.
 */
export function decodeEscaped(bytes: number[]): string {
  let s = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    const n = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    // the second byte's range excludes overlong forms, surrogates and code points above U+10FFFF
    const lo = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
    const hi = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
    let ok = n > 0 && i + n <= bytes.length;
    for (let k = 1; ok && k < n; k++) ok = k === 1 ? bytes[i + 1] >= lo && bytes[i + 1] <= hi : bytes[i + k] >= 0x80 && bytes[i + k] <= 0xbf;
    if (!ok) {
      s += String.fromCharCode(0xdc00 + b);
      i++;
      continue;
    }
    let cp = n === 1 ? b : b & (0xff >> (n + 1));
    for (let k = 1; k < n; k++) cp = (cp << 6) | (bytes[i + k] & 0x3f);
    s += String.fromCodePoint(cp);
    i += n;
  }
  return s;
}

/** Inverse of decodeEscaped; undefined for a lone surrogate that is not an escaped byte. */
export function encodeEscaped(text: string): Uint8Array | undefined {
  const out: number[] = [];
  for (const c of text) {
    const cp = c.codePointAt(0)!;
    if (cp >= 0xdc80 && cp <= 0xdcff) out.push(cp - 0xdc00);
    else if (cp >= 0xd800 && cp <= 0xdfff) return undefined;
    else out.push(...utf8.encode(c));
  }
  return Uint8Array.from(out);
}

/**
 * Tokens joined into the text they spell: lone bytes of neighbouring tokens that together form
 * UTF-8 become that character (`['\udce6\udc97', '\udca5']` → '日'); bytes still alone stay escaped.
 */
export function joinTokens(tokens: string[]): string {
  const bytes = encodeEscaped(tokens.join(''));
  return bytes === undefined ? tokens.join('') : decodeEscaped(Array.from(bytes));
}

/** `\xe3` for a byte that is not part of valid UTF-8 (as `tokenString` escapes it), else `\u202e` / `\u{e0001}`. */
function escapeCode(c: string): string {
  const cp = c.codePointAt(0)!;
  if (cp >= 0xdc80 && cp <= 0xdcff) return `\\x${(cp - 0xdc00).toString(16)}`;
  return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}

/** C0 controls and DEL as one visible symbol: newline ↵, tab ⇥, CR ␍, others their Control Picture (␀ … ␟, ␡). */
function symbol(c: string): string {
  const cp = c.codePointAt(0)!;
  if (c === '\n') return '↵';
  if (c === '\t') return '⇥';
  if (cp < 0x20) return String.fromCharCode(0x2400 + cp); // ␀ ␁ … ␛ … ␟ (␍ for CR)
  if (cp === 0x7f) return '␡';
  return escapeCode(c);
}

/**
 * One token as people see it in cells, axes and tables: printable, valid in XML, never empty for a
 * real token. Newline ↵, tab ⇥, other C0 controls and DEL as Control Pictures (␀, ␛, ␡), a lone UTF-8
 * byte as `\xe3`, other invisible or XML-invalid characters as `\u0085`; a token of only spaces shows
 * them as ␣. Distinct for every one of GPT-2's 256 byte tokens.
 */
export function displayToken(token: string): string {
  const s = token.replace(UNSHOWABLE, symbol);
  // an all-whitespace token would be invisible
  return s.trim() === '' ? s.replace(/ /g, '␣').replace(/\s/g, escapeCode) : s;
}

/**
 * A whole text (a generated continuation, a prompt) for a terminal or a report: newlines and tabs
 * kept, everything `displayToken` would not show raw replaced as it does (ESC → ␛, a lone byte → `\xe3`).
 */
export function displayText(text: string): string {
  return text.replace(UNSHOWABLE, (c) => (c === '\n' || c === '\t' ? c : symbol(c)));
}

/**
 * The token as a JSON string literal (`JSON.parse(quoteToken(t)) === t`), with every character
 * `displayToken` escapes written as `\uXXXX`: unambiguous, and safe in a terminal and in XML.
 */
export function quoteToken(token: string): string {
  return JSON.stringify(token).replace(UNSHOWABLE, (c) => {
    const cp = c.codePointAt(0)!;
    if (cp <= 0xffff) return `\\u${cp.toString(16).padStart(4, '0')}`;
    return `\\u${c.charCodeAt(0).toString(16)}\\u${c.charCodeAt(1).toString(16)}`; // JSON has no \u{…}
  });
}
