/** Shared by the CLI tests: run the built `sp` (building core, report and cli first when stale). */
import { execSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fixturesRoot, repoRoot } from '../../core/test/helpers/fixtures.js';

export const ROOT = repoRoot;
export const MAIN = path.join(ROOT, 'packages/cli/dist/main.js');
export const FIXTURES = fixturesRoot;

function newest(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

/** Build @sp/core, @sp/report and @sp/cli when any dist is missing or older than the sources (CI builds first anyway). */
export function ensureBuilt(): void {
  const pkgs = ['core', 'report', 'atlas', 'cli'];
  const outputs = [path.join(ROOT, 'packages/core/dist/index.js'), path.join(ROOT, 'packages/report/dist/index.js'), path.join(ROOT, 'packages/atlas/dist/index.js'), MAIN];
  const built = Math.min(...outputs.map((p) => (fs.existsSync(p) ? fs.statSync(p).mtimeMs : 0)));
  const sources = Math.max(...pkgs.map((p) => newest(path.join(ROOT, `packages/${p}/src`))));
  if (built >= sources) return;
  try {
    execSync('pnpm --filter "@sp/cli..." run build', { cwd: ROOT, stdio: 'pipe', timeout: 300_000 });
  } catch (e) {
    const out = `${(e as { stdout?: Buffer }).stdout ?? ''}${(e as { stderr?: Buffer }).stderr ?? ''}`;
    throw new Error(`building @sp/core, @sp/report and @sp/cli failed:\n${out.slice(-3000)}`);
  }
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function sp(args: string[]): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, SP_BACKEND: process.env.SP_BACKEND ?? 'wasm' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A failing run: exit 1, exactly one `error:` line on stderr, nothing on stdout. */
export function expectOneLineError(r: Run, text: string): void {
  expect(r.stdout).toBe('');
  expect(r.stderr).toBe(`error: ${r.stderr.slice(7).split('\n')[0]}\n`);
  expect(r.stderr).toContain(text);
  expect(r.status).toBe(1);
}
