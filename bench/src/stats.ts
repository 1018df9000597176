/** min / median / max of repeated measurements (the bench reports all three, never a single run). */
export interface Stat {
  min: number;
  median: number;
  max: number;
  n: number;
}

export function stat(samples: number[]): Stat {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { min: s[0] ?? NaN, median, max: s[n - 1] ?? NaN, n };
}

/** Apply f to each field (e.g. ms → tokens/s, which swaps min and max). */
export function mapStat(x: Stat, f: (v: number) => number): Stat {
  const a = f(x.min);
  const b = f(x.max);
  return { min: Math.min(a, b), median: f(x.median), max: Math.max(a, b), n: x.n };
}

export function fmt(x: Stat | undefined, digits = 1): string {
  if (!x || Number.isNaN(x.median)) return '—';
  const f = (v: number) => v.toFixed(digits);
  return `${f(x.median)} (${f(x.min)}–${f(x.max)})`;
}
