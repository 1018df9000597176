/** How tokens are shown: whitespace made visible where it would otherwise vanish, long tokens cut. */

/** Cell/axis text: newlines and tabs as symbols, at most `max` characters. */
export function showToken(t: string, max = 10): string {
  const s = t.replace(/\n/g, '↵').replace(/\r/g, '␍').replace(/\t/g, '⇥');
  const shown = s.trim() === '' ? s.replace(/ /g, '␣') : s; // an all-space token would be invisible
  return shown.length > max ? shown.slice(0, max - 1) + '…' : shown;
}

/** Unambiguous form for tooltips and tables: the token in double quotes, with JSON escapes. */
export function quoteToken(t: string): string {
  return JSON.stringify(t);
}

/** Escape text for HTML. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Probability for people: 3 significant digits, scientific below 0.001. */
export function fmtProb(p: number): string {
  return p >= 0.001 ? p.toPrecision(3) : p.toExponential(2);
}
