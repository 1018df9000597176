/**
 * `pnpm typecheck` (tsc -p tsconfig.test.json) checks tests and examples, which SWC runs with their
 * types stripped: it must reject a type error in a test file, accept a correct one, and cover every
 * test, example and bench file, with `@sp/core` resolved to the sources as jest does.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers/fixtures.js';

const TSC = path.join(repoRoot, 'node_modules/typescript/bin/tsc');

/** tsc on one file with the test settings; the file and its tsconfig sit in the ignored .test-tmp/. */
function checkOne(dir: string, name: string, source: string): Promise<{ status: number | null; out: string }> {
  fs.writeFileSync(path.join(dir, `${name}.test.ts`), source);
  fs.writeFileSync(path.join(dir, `${name}.tsconfig.json`), JSON.stringify({ extends: '../../tsconfig.test.json', include: [], files: [`${name}.test.ts`] }));
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [TSC, '-p', path.join(dir, `${name}.tsconfig.json`)], { cwd: repoRoot });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, out }));
  });
}

let dir: string;
beforeAll(() => {
  fs.mkdirSync(path.join(repoRoot, '.test-tmp'), { recursive: true });
  dir = fs.mkdtempSync(path.join(repoRoot, '.test-tmp', 'typecheck-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// Only the fixtures helper is imported (node types, no tfjs), so each check takes a few seconds.
const HEADER = `import { fixtureDir } from '../../packages/core/test/helpers/fixtures.js';\n`;

test('a type error in a test file fails the check; the same file typed right passes', async () => {
  const [bad, good] = await Promise.all([
    checkOne(dir, 'bad', `${HEADER}test('t', () => {\n  const n: number = fixtureDir('tiny-gpt2');\n  expect(n).toBeGreaterThan(0);\n});\n`),
    checkOne(dir, 'good', `${HEADER}test('t', () => {\n  const n: string = fixtureDir('tiny-gpt2');\n  expect(n).toContain('tiny-gpt2');\n});\n`),
  ]);
  expect(bad.status).not.toBe(0);
  expect(bad.out).toMatch(/bad\.test\.ts\(3,9\): error TS2322: Type 'string' is not assignable to type 'number'/);
  expect(good).toEqual({ status: 0, out: '' });
}, 60000);

test('tsconfig.test.json covers every TypeScript file of the tests, examples and bench', () => {
  const r = spawnSync(process.execPath, [TSC, '-p', 'tsconfig.test.json', '--listFilesOnly'], { cwd: repoRoot, encoding: 'utf8' });
  expect(r.status).toBe(0);
  const listed = new Set(r.stdout.split('\n').map((f) => path.relative(repoRoot, f.trim())));
  const want: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(repoRoot, rel), { withFileTypes: true })) {
      const p = path.join(rel, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'dist' && e.name !== 'fixtures') walk(p);
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) want.push(p);
    }
  };
  const roots = fs.readdirSync(path.join(repoRoot, 'packages')).flatMap((p) => [`packages/${p}/src`, `packages/${p}/test`]);
  for (const d of [...roots, 'examples', 'bench/src', 'bench/test']) if (fs.existsSync(path.join(repoRoot, d))) walk(d);
  expect(want.length).toBeGreaterThan(100);
  expect(want.filter((f) => !listed.has(f))).toEqual([]);
  // `@sp/core` and `@sp/report` resolve to their sources, as in jest, never to a stale build.
  expect(listed).toContain(path.join('packages', 'core', 'src', 'index.ts'));
  expect([...listed].filter((f) => /^packages\/[^/]+\/dist\//.test(f))).toEqual([]);
  expect(JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).scripts.typecheck).toBe('tsc -p tsconfig.test.json');
}, 60000);
