/**
 * `sp atlas serve` as a real process over a store written by `sp scan` on the tiny fixture: the URL
 * on stderr, /api/ answers equal `sp atlas show --json`, a bad parameter
 * is a 400, SIGTERM and SIGINT close it cleanly; a missing store and a busy port are one-line errors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fixtureDir, tmpDir } from '../../core/test/helpers/fixtures.js';
import { ensureBuilt, expectOneLineError, MAIN, ROOT, sp } from './cli-helpers.js';

const model = fixtureDir('tiny-gpt2');
const dir = tmpDir('sp-atlas-serve-cli-');
const store = path.join(dir, 'atlas.sqlite');

interface Served {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `sp atlas serve …` and wait for the URL it prints on stderr. */
function serve(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [MAIN, 'atlas', 'serve', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('exit', (code, signal) => done({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`no URL after 60 s; stderr: ${err}`)); }, 60_000);
    child.stderr!.on('data', (d) => {
      err += String(d);
      const m = /serving .* at (http:\/\/127\.0\.0\.1:\d+\/) \(Ctrl-C to stop\)\n/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], stderr: () => err, exited });
      }
    });
    void exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`exited ${code} before serving: ${err}`)); });
  });
}

beforeAll(() => {
  ensureBuilt();
  const r = sp(['scan', '--model', model, '--layers', '0-1', '--neurons', '0-5', '--samples', '1', '--max-new-tokens', '3', '--block-size', '3', '--store', store]);
  expect([r.status, r.stderr]).toEqual([0, expect.any(String)]);
});

describe('sp atlas serve', () => {
  test('serves the API (same JSON as sp atlas show --json), 400 for a bad parameter; SIGTERM stops it with exit 0', async () => {
    const s = await serve(['--store', store, '--port', '0']);
    try {
      const scans = await (await fetch(`${s.url}api/scans`)).json();
      expect(scans).toHaveLength(1);
      const n = await fetch(`${s.url}api/neuron/1/4`);
      expect(n.status).toBe(200);
      const show = sp(['atlas', 'show', '--store', store, '--neuron', '1,4', '--json']);
      expect(show.status).toBe(0);
      expect(await n.json()).toEqual(JSON.parse(show.stdout));
      const bad = await fetch(`${s.url}api/search?limit=-1`);
      expect(bad.status).toBe(400);
      expect(await bad.json()).toEqual({ error: 'bad parameter: limit must be >= 1' });
      const page = await fetch(s.url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<script type="module" src="/app.js"></script>');
    } finally {
      s.child.kill('SIGTERM');
    }
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.stderr()).toMatch(/SIGTERM: stopping\n$/);
  });

  test('SIGINT stops it too, with exit 0', async () => {
    const s = await serve(['--store', store, '--port', '0', '--host', '127.0.0.1']);
    expect((await fetch(`${s.url}api/scans`)).status).toBe(200);
    s.child.kill('SIGINT');
    expect(await s.exited).toEqual({ code: 0, signal: null });
  });

  test('a missing store, a busy port and a bad --port are one-line errors (exit 1)', async () => {
    expectOneLineError(sp(['atlas', 'serve', '--store', path.join(dir, 'none.sqlite'), '--port', '0']), 'no atlas store at');
    expectOneLineError(sp(['atlas', 'serve', '--port', '0']), '--store <path> is required');
    expectOneLineError(sp(['atlas', 'serve', '--store', store, '--port', '70000']), '--port must be an integer from 0 to 65535');
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      // spawnSync would block the event loop that holds the busy port open: fine, listen() is done.
      expectOneLineError(sp(['atlas', 'serve', '--store', store, '--port', String(port)]), `port ${port} on 127.0.0.1 is already in use`);
    } finally {
      busy.close();
    }
  });
});
