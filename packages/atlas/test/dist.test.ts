/**
 * The distributed scan end to end (issue #14): `sp scan --queue` enqueues a random 4-layer model's
 * units on BullMQ (Redis), three `sp worker` processes compute them into PostgreSQL; one is SIGKILLed
 * mid-run, Redis is restarted once and PostgreSQL stopped for a while; a poison unit ends in the failed
 * list; a worker with another model refuses the jobs. The table ends with every neuron exactly once,
 * equal to a single-machine SQLite `sp scan` of the same settings.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { openQueue, PgStore, redact, redactText, settingsDigest, SqliteStore, unitJobId, type NeuronRecord, type ScanSettings } from '@sp/atlas';
import { ensureBuilt, expectOneLineError, MAIN, ROOT } from '../../cli/test/cli-helpers.js';
import { tmpDir } from '../../core/test/helpers/fixtures.js';
import { randomModelDir } from './helpers.js';
import { TestPostgres, TestRedis } from './dist-servers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const env = { ...process.env, SP_BACKEND: process.env.SP_BACKEND ?? 'wasm', SP_THREADS: '1' };

interface Proc { p: ChildProcess; out: string; err: string; exit: Promise<number | null> }
function start(args: string[]): Proc {
  const p = spawn(process.execPath, ['--no-warnings', MAIN, ...args], { cwd: ROOT, env });
  const r: Proc = { p, out: '', err: '', exit: new Promise((res) => p.once('exit', (code) => res(code))) };
  p.stdout!.on('data', (d) => { r.out += d; });
  p.stderr!.on('data', (d) => { r.err += d; });
  return r;
}
function sp(args: string[]) {
  return spawnSync(process.execPath, ['--no-warnings', MAIN, ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 });
}
async function until(what: string, ok: () => boolean, ms = 120_000, ps: Proc[] = []): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; stderr:\n${ps.map((w) => w.err.slice(-1500)).join('\n--\n')}`);
    await sleep(50);
  }
}
/** The exit code, or a failure showing the process's stderr when it does not end in time. */
async function exitOf(w: Proc, ms = 120_000): Promise<number | null> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`process did not exit in ${ms / 1000} s; stderr:\n${w.err.slice(-3000)}`)), ms); });
  try {
    return await Promise.race([w.exit, late]);
  } finally {
    clearTimeout(t);
  }
}
const written = (ps: Proc[]) => ps.reduce((a, w) => a + (w.err.match(/ written \(/g)?.length ?? 0), 0);

describe('distributed scan: BullMQ + PostgreSQL', () => {
  let redis: TestRedis, pgs: TestPostgres;
  const outputs: string[] = [];
  beforeAll(async () => {
    ensureBuilt();
    redis = await TestRedis.start();
    pgs = await TestPostgres.start();
  }, 180_000);
  const procs: Proc[] = [];
  const track = (w: Proc) => { procs.push(w); return w; };
  afterAll(async () => {
    for (const w of procs) if (w.p.exitCode === null && w.p.signalCode === null) w.p.kill('SIGKILL');
    await redis?.down();
    await pgs?.down();
  });

  test('redact masks passwords in URLs and messages', () => {
    expect(redact('postgres://sp:hunter2@db:5432/atlas')).toBe('postgres://sp:***@db:5432/atlas');
    expect(redact('redis://:pw@127.0.0.1:6379/0')).toBe('redis://:***@127.0.0.1:6379/0');
    expect(redact('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactText('connect to postgres://a:b@h/x failed; password=zz')).toBe('connect to postgres://a:***@h/x failed; password=***');
  });

  test('bad or unreachable queue and store: one-line errors, passwords masked', async () => {
    const closed = `127.0.0.1:${await (await import('./dist-servers.js')).freePort()}`;
    const cases: Array<[string[], string]> = [
      [['worker'], '--queue <redis://HOST:PORT> is required'],
      [['worker', '--queue', 'http://x', '--store', 'postgres://a@h/x'], '--queue must be a redis:// URL'],
      [['worker', '--queue', redis.url, '--store', 'atlas.sqlite'], '--store must be a postgres:// URL'],
      [['scan', '--status'], '--status needs --queue'],
      [['scan', '--status', '--queue', `redis://u:pw-secret-1@${closed}`], `cannot reach the queue at redis://u:***@${closed}`],
      [['worker', '--queue', redis.url, '--store', `postgres://a:pw-secret-1@${closed}/x`], `cannot open the PostgreSQL store postgres://a:***@${closed}/x`],
      [['scan', '--queue', redis.url, '--store', 'x.sqlite'], '--queue needs a postgres:// --store'],
    ];
    for (const [args, msg] of cases) {
      const r = sp(args);
      expectOneLineError({ status: r.status, stdout: r.stdout, stderr: r.stderr }, msg);
      expect(r.stderr).not.toContain('pw-secret-1');
    }
  });

  test('3 workers, one SIGKILLed, Redis restarted, PostgreSQL stopped: every neuron once, equal to the SQLite scan', async () => {
    const { dir } = randomModelDir({ nLayer: 4, nHead: 2, dModel: 16, nCtx: 64 }, 41);
    const { dir: otherDir } = randomModelDir({ nLayer: 4, nHead: 2, dModel: 16, nCtx: 64 }, 42);
    const work = tmpDir('sp-dist-');
    const corpus = path.join(work, 'corpus.txt');
    fs.writeFileSync(corpus, ['The cat sat on the mat.', 'Paris is the capital of France and a large city.', 'One two three four five six seven eight.', 'Rain falls in the spring.'].join('\n'));
    const scanArgs = ['--model', dir, '--samples', '1', '--max-new-tokens', '3', '--seed', '3', '--block-size', '8', '--corpus', corpus, '--window', '16', '--top-examples', '3', '--context', '2'];

    // The single-machine reference.
    const ref = sp(['scan', ...scanArgs, '--store', path.join(work, 'ref.sqlite')]);
    expect(ref.stderr).not.toMatch(/error/);
    expect(ref.status).toBe(0);

    const q = ['--queue', redis.url, '--store', pgs.url];
    const enq = sp(['scan', ...scanArgs, ...q, '--json']);
    outputs.push(enq.stdout, enq.stderr);
    expect(enq.status).toBe(0);
    const s1 = JSON.parse(enq.stdout);
    expect([s1.units_total, s1.units_added]).toEqual([32, 32]);
    expect(s1.store).toBe(redact(pgs.url));
    // Idempotent job ids: enqueuing again adds nothing.
    const again = sp(['scan', ...scanArgs, ...q, '--json']);
    outputs.push(again.stdout, again.stderr);
    expect(JSON.parse(again.stdout)).toMatchObject({ units_added: 0, units_already_queued: 32 });
    const key = s1.scan as { modelDigest: string; settingsDigest: string };

    // A poison unit of the same scan (neurons past d_mlp): it must end in the failed list, the rest complete.
    const store = await PgStore.open(pgs.url);
    const settings = (await store.scans())[0].settings as ScanSettings;
    expect(settingsDigest(settings)).toBe(key.settingsDigest);
    const queue = openQueue(redis.url);
    const poison = { layer: 0, start: 60, end: 70 };
    await queue.add('unit', { ...key, settings, unit: poison, layers: [0, 1, 2, 3], model: dir, corpusPath: corpus }, { jobId: unitJobId(key, poison), attempts: 3, removeOnFail: false });
    await queue.close();

    // A worker with another model refuses: it exits with an error and writes nothing.
    const wrong = track(start(['worker', '--queue', redis.url, '--store', pgs.url, '--model', otherDir, '--lock-duration', '3000']));
    expect(await exitOf(wrong, 60_000)).toBe(1);
    outputs.push(wrong.out, wrong.err);
    expect(wrong.err).toMatch(/error: the queue holds units of model .*refusing them/);

    const workers = [0, 1, 2].map(() => track(start(['worker', ...q, '--model', dir, '--lock-duration', '3000', '--exit-when-idle'])));
    // SIGKILL the first worker right after its first unit: it is then in the middle of its next one.
    await until('a first unit', () => written([workers[0]]) >= 1, 60_000, workers);
    workers[0].p.kill('SIGKILL');
    await until('8 units', () => written(workers) >= 8, 60_000, workers);
    await redis.restart();
    await until('14 units', () => written(workers) >= 14, 60_000, workers);
    await pgs.down();
    await sleep(3000);
    await pgs.up();
    const codes = await Promise.all(workers.slice(1).map((w) => exitOf(w)));
    expect(await workers[0].exit).toBeNull();
    for (const w of workers) outputs.push(w.out, w.err);
    expect({ codes, err: codes.some((c) => c !== 0) ? workers.map((w) => w.err.slice(-1500)) : [] }).toEqual({ codes: [0, 0], err: [] });
    expect(workers.slice(1).map((w) => w.err).join('')).toMatch(/store unreachable .* retrying in/);

    // --status: all done, the poison unit failed with its error.
    const st = sp(['scan', '--status', ...q, '--json']);
    outputs.push(st.stdout, st.stderr);
    expect(st.status).toBe(0);
    const status = JSON.parse(st.stdout).scans.find((s: { scan: { settingsDigest: string } }) => s.scan.settingsDigest === key.settingsDigest);
    expect(status).toMatchObject({ units_total: 32, units_done: 32, neurons_done: 256, running: 0, waiting: 0, failed: 1, eta_seconds: 0 });
    expect(status.failed_units[0].unit).toEqual(poison);
    expect(status.failed_units[0].error).toMatch(/out of range/);
    const human = sp(['scan', '--status', ...q]);
    outputs.push(human.stdout, human.stderr);
    expect(human.stdout).toMatch(/32\/32 units done, 0 running, 0 waiting, 1 failed; complete/);
    expect(human.stdout).toMatch(/failed: layer 0 neurons \[60, 70\)/);

    // Every neuron exactly once, equal to the SQLite scan.
    const got: NeuronRecord[] = [];
    for await (const r of store.allNeurons(key)) got.push(r);
    const sqlite = await SqliteStore.open(path.join(work, 'ref.sqlite'), { create: false });
    const want: NeuronRecord[] = [];
    for await (const r of sqlite.allNeurons(key)) want.push(r);
    expect(want).toHaveLength(256);
    expect(new Set(got.map((r) => `${r.layer}/${r.index}`)).size).toBe(256);
    expect(got).toEqual(want);
    expect(got.some((r) => r.examples.length > 0 && r.samples.length === 1)).toBe(true);
    // The search and the neuron view read the same from both stores.
    const byIndex = new Map(want.map((r) => [`${r.layer}/${r.index}`, r]));
    for (const q of [{ text: 'the', limit: 5 }, { token: want[0].projection.top[0].token }, { sort: 'probe_projection_overlap' as const, limit: 7 }]) {
      const a = await store.search({ ...key, ...q }), b = await sqlite.search({ ...key, ...q });
      expect(a.total).toBeGreaterThan(0);
      expect(a).toEqual(b);
      for (const h of a.hits) expect(h.top).toEqual(byIndex.get(`${h.layer}/${h.index}`)!.projection.top.slice(0, 8).map((t) => t.token));
    }
    expect(await store.neuron(2, 5, key)).toEqual(await sqlite.neuron(2, 5, key));
    // Nothing of the other model got in.
    expect((await store.scans()).map((s) => s.modelDigest)).toEqual([key.modelDigest]);
    await sqlite.close();
    await store.close();

    // The password never appears in any output.
    for (const o of outputs) expect(o).not.toContain(pgs.password);
  }, 300_000);
});
