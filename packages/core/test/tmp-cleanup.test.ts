/**
 * Issue 16: the suite must not leave folders in os.tmpdir(). Runs two test files that make
 * folders with tmpDir() (and random checkpoints) in a child jest whose TMPDIR is a fresh folder,
 * then checks nothing of theirs is left in it.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot, removeTmpDirs, tmpDir } from './helpers/fixtures.js';

test('tmpDir folders are removed after each test file', () => {
  const tmp = fs.mkdtempSync(path.join(repoRoot, 'node_modules', '.sp-tmpdir-check-'));
  try {
    const files = ['packages/core/test/probes/template.test.ts', 'packages/core/test/weights/safetensors.test.ts'];
    const r = spawnSync(process.execPath, ['--experimental-vm-modules', '--no-warnings', 'node_modules/jest/bin/jest.js', '--runInBand', ...files], {
      cwd: repoRoot, encoding: 'utf8', timeout: 300_000, env: { ...process.env, TMPDIR: tmp },
    });
    expect(r.stderr).toMatch(/Tests:\s+\d+ passed/);
    expect(r.status).toBe(0);
    expect(fs.readdirSync(tmp).filter((f) => !f.startsWith('jest_'))).toEqual([]); // jest's own cache may stay
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}, 300_000);

test('removeTmpDirs removes what tmpDir made, contents included', () => {
  const a = tmpDir('sp-test-a-');
  fs.writeFileSync(path.join(a, 'f'), 'x');
  fs.mkdirSync(path.join(a, 'sub'));
  removeTmpDirs();
  expect(fs.existsSync(a)).toBe(false);
});
