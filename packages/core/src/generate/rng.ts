/**
 * Seeded uniform random numbers (mulberry32 seeded through splitmix32). Each generated sequence
 * gets its own stream keyed by (seed, sequence index), so sample j is the same whether it runs
 * alone or in a batch of any size.
 *
 * Seeds are integers 0 … 2³² − 1 (the generator's state is 32 bits): anything else is refused, not
 * silently truncated (2³² and 0 would otherwise be the same seed).
 */
import { SpError } from '../errors.js';

export const MAX_SEED = 2 ** 32 - 1;

export function assertSeed(seed: number, name = 'seed'): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new SpError('BAD_INPUT', `${name} must be an integer from 0 to ${MAX_SEED} (got ${seed})`);
  }
}

/** A random seed for runs that give none (reported so the run can be repeated). */
export function randomSeed(): number {
  return Math.floor(Math.random() * (MAX_SEED + 1));
}
export function splitmix32(a: number): number {
  a = (a + 0x9e3779b9) | 0;
  let t = a ^ (a >>> 16);
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  return (t ^ (t >>> 15)) >>> 0;
}

export function seededRandom(seed: number, stream = 0): () => number {
  assertSeed(seed);
  let s = splitmix32((splitmix32(seed >>> 0) ^ Math.imul(stream + 1, 0x85ebca6b)) >>> 0);
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
