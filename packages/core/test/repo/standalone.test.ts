/**
 * The repository stands alone: a clone needs no folder beside it. No source, test, example, doc or
 * script may mention the old out-of-tree fixture folder, and the test checkpoints in
 * packages/core/test/fixtures are files git keeps (not ignored) and treats as binary.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, fixtureDir, fixturesRoot, repoRoot, tmpDir } from '../helpers/fixtures.js';

const OUT_OF_TREE = /\.\.[/\\]shared\b|\bshared[/\\]fixtures\b|['"]\.\.['"]\s*,\s*['"]shared['"]/;
// The bad lines below are built from pieces so this file does not match itself.
const UP = '..';
const SH = 'shared';
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', 'weights', '.weights', '.cache', 'node24', '.test-tmp', 'tmp']);

const hasGit = spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: repoRoot, encoding: 'utf8' }).stdout?.trim() === 'true';

/** The project's own files: what git tracks plus new files it does not ignore; else a walk. */
function projectFiles(root: string): string[] {
  if (hasGit && root === repoRoot) {
    const r = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`git ls-files: ${r.stderr}`);
    return r.stdout.split('\0').filter((f) => f && fs.existsSync(path.join(root, f)));
  }
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) walk(p);
      } else if (e.isFile()) out.push(p);
    }
  };
  walk('');
  return out;
}

/** `file:line: text` for each line of a text file under `root` that points outside the repository. */
function outOfTreeMentions(root: string): string[] {
  const hits: string[] = [];
  for (const f of projectFiles(root)) {
    const buf = fs.readFileSync(path.join(root, f));
    if (buf.subarray(0, 8192).includes(0)) continue; // binary (checkpoints, PNG baselines)
    buf.toString('utf8').split('\n').forEach((line, i) => {
      if (OUT_OF_TREE.test(line)) hits.push(`${f}:${i + 1}: ${line.trim().slice(0, 160)}`);
    });
  }
  return hits;
}

test('the detector finds each way of pointing at the folder beside the clone, and nothing else', () => {
  const dir = tmpDir('sp-standalone-');
  try {
    const bad = [
      `const F = path.resolve(here, '${UP}/${UP}/${SH}/fixtures/tiny-gpt2');`,
      `golden answers (\`${UP}/${SH}\`)`,
      `path.join(repoRoot, '${UP}', 'shared', 'fixtures')`,
      `see ${SH}\\fixtures\\tiny-gpt2`,
    ];
    fs.mkdirSync(path.join(dir, 'src'));
    fs.mkdirSync(path.join(dir, 'node_modules'));
    bad.forEach((l, i) => fs.writeFileSync(path.join(dir, 'src', `bad${i}.ts`), `// ok\n${l}\n`));
    fs.writeFileSync(path.join(dir, 'src', 'good.ts'), "const m = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }); // shared memory\n");
    fs.writeFileSync(path.join(dir, 'node_modules', 'dep.js'), bad[0]);
    fs.writeFileSync(path.join(dir, 'src', 'blob.bin'), Buffer.concat([Buffer.from([0]), Buffer.from(bad[0])]));
    expect(outOfTreeMentions(dir).sort()).toEqual(bad.map((l, i) => `src/bad${i}.ts:2: ${l}`).sort());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('no project file points outside the repository (a fresh clone has no folder beside it)', () => {
  const files = projectFiles(repoRoot);
  expect(files).toContain('README.md');
  expect(files).toContain('packages/core/test/helpers/fixtures.ts');
  expect(outOfTreeMentions(repoRoot)).toEqual([]);
});

test('the fixture checkpoints live in the repository', () => {
  expect(path.relative(repoRoot, fixturesRoot)).toBe(path.join('packages', 'core', 'test', 'fixtures'));
  for (const name of FIXTURES) {
    for (const f of ['config.json', 'model.safetensors', 'golden.json']) {
      const p = path.join(fixtureDir(name), f);
      expect(fs.statSync(p).size).toBeGreaterThan(100);
    }
  }
});

(hasGit ? test : test.skip)('git keeps the fixtures (not ignored) and treats checkpoints as binary', () => {
  const files = FIXTURES.flatMap((n) => ['config.json', 'model.safetensors', 'golden.json'].map((f) => path.relative(repoRoot, path.join(fixtureDir(n), f))));
  // check-ignore exits 1 when no path is ignored.
  const ign = spawnSync('git', ['check-ignore', '--no-index', ...files], { cwd: repoRoot, encoding: 'utf8' });
  expect({ status: ign.status, ignored: ign.stdout.trim() }).toEqual({ status: 1, ignored: '' });
  const st = files.filter((f) => f.endsWith('.safetensors'));
  const attr = spawnSync('git', ['check-attr', 'text', 'diff', 'merge', '--', ...st], { cwd: repoRoot, encoding: 'utf8' });
  expect(attr.stdout.trim().split('\n').sort()).toEqual(st.flatMap((f) => ['text', 'diff', 'merge'].map((a) => `${f}: ${a}: unset`)).sort());
});
