/**
 * Issue 16, process level: the library leaves the process's error handling alone, a closed stdout
 * ends quietly, flags and environment follow one rule, output paths are checked before the work
 * and written atomically, and the small CLI promises (--version, no tfjs banner, text --topk,
 * reported seeds, warnings for ignored sampling options).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { tmpDir } from '../../core/test/helpers/fixtures.js';
import { writeFile } from '../src/report-files.js';
import { ensureBuilt, expectOneLineError, FIXTURES, MAIN, ROOT, sp } from './cli-helpers.js';

const TINY = () => path.join(FIXTURES, 'tiny-gpt2');
const CORE = path.join(ROOT, 'packages/core/dist/index.js');

beforeAll(() => ensureBuilt(), 300_000);

/** Run `script` as a user's .mjs file (not -e: eval'd worker threads would inherit --input-type=module). */
function node(script: string, env: Record<string, string> = {}) {
  const file = path.join(tmpDir('sp-cli-script-'), 'user.mjs');
  fs.writeFileSync(file, script);
  return spawnSync(process.execPath, [file], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
}

describe('the wasm backend does not take over uncaught errors', () => {
  test.each([['single-threaded', '1'], ['threaded XNNPACK', '2']])('%s: a user bug exits 1 with its own short trace', (_, threads) => {
    const script = `
      import { gpt2 } from ${JSON.stringify(CORE)};
      const count = () => ['uncaughtException', 'unhandledRejection', 'exit'].map((e) => process.listeners(e).length).join();
      const before = count();
      const m = await gpt2(${JSON.stringify(TINY())}, { backend: 'wasm' });
      console.log('listeners', before, count());
      m.dispose();
      throw new Error('a bug in the user script');`;
    const r = node(script, { SP_WASM_THREADS: threads });
    const [, before, after] = r.stdout.trim().split(' ');
    expect(after).toBe(before);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('Error: a bug in the user script');
    expect(r.stderr.length).toBeLessThan(2000);
    expect(r.stderr).not.toMatch(/tfjs|emscripten|ExitStatus/i);
  });

  test('an unhandled rejection is Node\'s own (exit 1), not a rethrow from the glue (exit 7)', () => {
    const r = node(`import { initBackend } from ${JSON.stringify(CORE)}; await initBackend('wasm'); setTimeout(() => Promise.reject(new Error('nobody caught me')));`);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('nobody caught me');
    expect(r.stderr.length).toBeLessThan(2000);
    expect(r.stderr).not.toMatch(/tfjs|emscripten/i);
  });
});

test('a reader that closes stdout early (| head -c 10): exit 0, nothing on stderr', async () => {
  const ids = Array.from({ length: 60 }, (_, i) => i + 1).join(','); // ~400 KB of JSON: more than a pipe holds
  const child = spawn(process.execPath, [MAIN, 'lens', '--model', TINY(), '--ids', ids, '--topk', '50', '--json'], { cwd: ROOT, env: { ...process.env, SP_BACKEND: 'wasm' } });
  let stderr = '';
  let first = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.once('data', (d: Buffer) => {
    first = d.subarray(0, 10).toString();
    child.stdout.destroy();
  });
  const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
  expect(first).toBe('{"model":"');
  expect(stderr).toBe('');
  expect(code).toBe(0);
  // the same through a real shell pipeline, as a user types it
  const sh = spawnSync('bash', ['-c', `set -o pipefail; node ${JSON.stringify(MAIN)} lens --model ${JSON.stringify(TINY())} --ids ${ids} --topk 50 --json | head -c 10`], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, SP_BACKEND: 'wasm' } });
  expect({ status: sh.status, stdout: sh.stdout, stderr: sh.stderr }).toEqual({ status: 0, stdout: '{"model":"', stderr: '' });
}, 60_000);

describe('threads and backend: one rule for flags and environment', () => {
  const run = (args: string[], env: Record<string, string>) => {
    const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, SP_BACKEND: 'wasm', ...env } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const lens = ['lens', '--model', 'no-such-model-needed', '--ids', '1'];
  test.each([
    [['--threads', '0'], {}, '--threads must be an integer from 1 to 64 (got "0")'],
    [['--threads', '999'], {}, '--threads must be an integer from 1 to 64 (got "999")'],
    [[], { SP_THREADS: '0' }, 'SP_THREADS must be an integer from 1 to 64 (got "0")'],
    [[], { SP_THREADS: 'abc' }, 'SP_THREADS must be an integer from 1 to 64 (got "abc")'],
    [[], { SP_THREADS: '999' }, 'SP_THREADS must be an integer from 1 to 64 (got "999")'],
    [[], { SP_MATMUL: 'nonsense' }, 'SP_MATMUL must be sp or tfjs (got "nonsense")'],
    [[], { SP_BACKEND: 'gpu' }, 'SP_BACKEND must be wasm, cpu, tensorflow or webgpu (got "gpu")'],
    [['--backend', 'gpu'], {}, 'backend must be wasm, cpu, tensorflow or webgpu (got "gpu")'],
  ])('%j %j → one line, before any work', (flags, env, message) => {
    const r = run([...flags, ...lens], env as Record<string, string>);
    expectOneLineError(r, message);
  });

  test('a valid SP_THREADS runs; above the core count it warns in one line', () => {
    const ok = run(['lens', '--model', TINY(), '--ids', '1,2', '--json'], { SP_THREADS: '1' });
    expect({ status: ok.status, stderr: ok.stderr }).toEqual({ status: 0, stderr: '' });
    const many = run(['lens', '--model', TINY(), '--ids', '1,2', '--json', '--threads', '64'], {});
    expect(many.status).toBe(0);
    expect(many.stderr).toMatch(/^warning: --threads 64 is more than the \d+ cores here; that is usually slower\n$/);
  });
});

describe('output files', () => {
  test('a missing folder fails in one line before any sample is printed (and before the model loads)', () => {
    const t0 = performance.now();
    const r = sp(['probe', '--model', TINY(), '--prompt', 'a <neuron> b', '--neuron', '1,5', '--html', '/nonexistent/dir/x.html']);
    expectOneLineError(r, 'cannot write --html /nonexistent/dir/x.html: folder /nonexistent/dir does not exist');
    for (const cmd of [['lens'], ['rank']]) {
      const l = sp([...cmd, '--model', path.join(FIXTURES, 'missing-model'), '--ids', '1', '--png', '/nonexistent/y.png']);
      expectOneLineError(l, 'cannot write --png /nonexistent/y.png: folder /nonexistent does not exist');
    }
    const d = tmpDir('sp-cli-out-');
    expectOneLineError(sp(['lens', '--model', TINY(), '--ids', '1', '--svg', d]), `cannot write --svg ${d}: it is a folder`);
    expect(performance.now() - t0).toBeLessThan(20_000);
  });

  test('writes go through a temporary file: a failed write leaves nothing, a good one only the file', () => {
    const d = tmpDir('sp-cli-out-');
    const target = path.join(d, 'r.html');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'x'); // a non-empty folder: the final rename fails
    expect(() => writeFile(new Command(), target, 'a'.repeat(100_000))).toThrow(/^cannot write .*r\.html: E/);
    expect(fs.readdirSync(d)).toEqual(['r.html']);
    fs.rmSync(target, { recursive: true });
    writeFile(new Command(), target, '<html></html>');
    expect(fs.readdirSync(d)).toEqual(['r.html']);
    expect(fs.readFileSync(target, 'utf8')).toBe('<html></html>');
  });
});

describe('small promises', () => {
  test('sp --version prints the package version', () => {
    const r = sp(['--version']);
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'packages/cli/package.json'), 'utf8'));
    expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: `${version}\n`, stderr: '' });
  });

  test('the cpu backend prints no tfjs banner', () => {
    const r = spawnSync(process.execPath, [MAIN, 'lens', '--model', TINY(), '--ids', '1,2', '--json'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, SP_BACKEND: 'cpu' } });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

  test('text lens shows --topk tokens per layer (one line each); without it, the top one', () => {
    const one = sp(['lens', '--model', TINY(), '--ids', '1,2']);
    const three = sp(['lens', '--model', TINY(), '--ids', '1,2', '--topk', '3']);
    const json = JSON.parse(sp(['lens', '--model', TINY(), '--ids', '1,2', '--topk', '3', '--json']).stdout) as { layers: Array<{ positions: Array<{ top: Array<{ token: string }> }> }> };
    const lines1 = one.stdout.trimEnd().split('\n');
    const lines3 = three.stdout.trimEnd().split('\n');
    expect(lines1).toHaveLength(1 + 3); // header + embed and 2 blocks
    expect(lines3).toHaveLength(1 + 3 * 3);
    expect(lines3[1].startsWith('2 ')).toBe(true);
    expect(lines3[2].startsWith(' ')).toBe(true);
    expect(lines3[1]).toBe(lines1[1]);
    // the third line of the output row holds the third token at position 0
    expect(lines3[3]).toContain(json.layers[2].positions[0].top[2].token.trim().slice(0, 6));
  });

  test('generate --sample without --seed reports the seed it picked; the seed repeats the run', () => {
    const args = ['generate', '--model', TINY(), '--ids', '1,2', '--sample', '--max-new-tokens', '6', '--json'];
    const a = sp(args);
    expect(a.status).toBe(0);
    const m = /^seed: (\d+)\n$/.exec(a.stderr);
    expect(m).not.toBeNull();
    const ja = JSON.parse(a.stdout);
    expect(ja.seed).toBe(Number(m![1]));
    const b = sp([...args, '--seed', m![1]]);
    expect(b.stderr).toBe('');
    expect(JSON.parse(b.stdout).ids).toEqual(ja.ids);
    expect(JSON.parse(sp(['generate', '--model', TINY(), '--ids', '1,2', '--json']).stdout).seed).toBeNull();
  });

  test('seeds above 2^32 − 1 are refused, not truncated', () => {
    for (const cmd of [['generate', '--ids', '1', '--sample'], ['probe', '--prompt', 'a <neuron>', '--neuron', '1,5']]) {
      expectOneLineError(sp([...cmd, '--model', TINY(), '--seed', '4294967296']), '--seed must be an integer from 0 to 4294967295 (got "4294967296")');
    }
  });

  test('sampling options without sampling are ignored with a one-line warning (as HF does)', () => {
    const r = sp(['generate', '--model', TINY(), '--ids', '1,2', '--max-new-tokens', '2', '--temperature', '0.7', '--top-k', '5', '--json']);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('warning: --temperature, --top-k have no effect without --sample (greedy decoding)\n');
    const g = sp(['generate', '--model', TINY(), '--ids', '1,2', '--max-new-tokens', '2', '--json']);
    expect(JSON.parse(r.stdout).ids).toEqual(JSON.parse(g.stdout).ids);
    const p = sp(['probe', '--model', TINY(), '--prompt', 'a <neuron>', '--neuron', '1,5', '--greedy', '--max-new-tokens', '2', '--temperature', '0.7', '--json']);
    expect(p.status).toBe(0);
    expect(p.stderr).toBe('warning: --temperature has no effect with --greedy\n');
  });
});
