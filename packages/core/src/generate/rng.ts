/**
 * Seeded uniform random numbers (mulberry32 seeded through splitmix32). Each generated sequence
 * gets its own stream keyed by (seed, sequence index), so sample j is the same whether it runs
 * alone or in a batch of any size.
 */
export function splitmix32(a: number): number {
  a = (a + 0x9e3779b9) | 0;
  let t = a ^ (a >>> 16);
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  return (t ^ (t >>> 15)) >>> 0;
}

export function seededRandom(seed: number, stream = 0): () => number {
  let s = splitmix32((splitmix32(seed >>> 0) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0);
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
