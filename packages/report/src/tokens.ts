/**
 * How tokens are shown: @sp/core's displayToken (control bytes, lone UTF-8 bytes and other
 * invisible characters made readable, and valid in XML), long tokens cut.
 */
import { displayText, displayToken, joinTokens, quoteToken } from '@sp/core/light';

/** Unambiguous form for tooltips and tables: the token as a JSON string literal, controls escaped. */
export { quoteToken };

/** A run of tokens as the text they spell (lone bytes of a split character joined again), quoted. */
export function quoteText(tokens: string[]): string {
  return quoteToken(joinTokens(tokens));
}

/** Cell/axis text: displayToken's form, at most `max` characters (never splitting a character). */
export function showToken(t: string, max = 10): string {
  const chars = Array.from(displayToken(t));
  return chars.length > max ? chars.slice(0, max - 1).join('') + '…' : chars.join('');
}

/** Escape text for HTML; control characters made visible (they are not allowed in HTML text). */
export function esc(s: string): string {
  return displayText(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Probability for people: 3 significant digits, scientific below 0.001. */
export function fmtProb(p: number): string {
  return p >= 0.001 ? p.toPrecision(3) : p.toExponential(2);
}
