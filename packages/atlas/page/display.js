// Token display for the browser: the same rules as @sp/core's displayToken / displayText
// (packages/core/src/tokenizer/display.ts; test/serve.test.ts checks they agree on all 256 byte
// tokens and on format characters). Controls, lone UTF-8 bytes and invisible characters made readable.
const UNSHOWABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\p{Noncharacter_Code_Point}]/gu;

function escapeCode(c) {
  const cp = c.codePointAt(0);
  if (cp >= 0xdc80 && cp <= 0xdcff) return `\\x${(cp - 0xdc00).toString(16)}`;
  return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, '0')}`;
}

function symbol(c) {
  const cp = c.codePointAt(0);
  if (c === '\n') return '↵';
  if (c === '\t') return '⇥';
  if (cp < 0x20) return String.fromCharCode(0x2400 + cp);
  if (cp === 0x7f) return '␡';
  return escapeCode(c);
}

export function displayToken(token) {
  const s = String(token).replace(UNSHOWABLE, symbol);
  return s.trim() === '' ? s.replace(/ /g, '␣').replace(/\s/g, escapeCode) : s;
}

export function displayText(text) {
  return String(text).replace(UNSHOWABLE, (c) => (c === '\n' || c === '\t' ? c : symbol(c)));
}
