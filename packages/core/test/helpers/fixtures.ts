import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  let d = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(d, 'pnpm-workspace.yaml'))) {
    const up = path.dirname(d);
    if (up === d) throw new Error('repo root not found');
    d = up;
  }
  return d;
}

export const repoRoot = findRepoRoot();
/** The random test checkpoints and their golden answers (from an independent numpy GPT-2), in the repository. */
export const fixturesRoot = path.join(repoRoot, 'packages/core/test/fixtures');
export const FIXTURES = ['tiny-gpt2', 'tiny-gpt2-f16-prefixed'] as const;

export interface GoldenTop { id: number; prob: number }
export interface GoldenCase {
  name: string;
  ids: number[];
  inject: [number, number, number] | null;
  last_logits_top10: Array<{ id: number; logit: number }>;
  last_logits_at: Record<string, number>;
  last_logsumexp: number;
  argmax_per_position: number[];
  lens: Array<{ layer: number; positions: Array<{ top: GoldenTop[] }> }>;
  greedy: number[];
  greedy_rep2: number[];
}
export interface Golden {
  model: { n_layer: number; n_head: number; d_model: number };
  ff_key: { layer: number; index: number; first8: number[] };
  ff_value: { layer: number; index: number; first8: number[] };
  cases: GoldenCase[];
}

export function fixtureDir(name: string): string {
  return path.join(fixturesRoot, name);
}

export function golden(name: string): Golden {
  return JSON.parse(fs.readFileSync(path.join(fixtureDir(name), 'golden.json'), 'utf8'));
}

const tmpDirs: string[] = [];

/** A fresh folder in os.tmpdir(), removed after the test file (jest.setup.ts) or at exit. */
export function tmpDir(prefix = 'sp-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (tmpDirs.length === 0) process.once('exit', removeTmpDirs);
  tmpDirs.push(dir);
  return dir;
}

/** Remove every folder tmpDir made so far. */
export function removeTmpDirs(): void {
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}
