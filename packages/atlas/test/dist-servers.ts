/**
 * Throw-away Redis and PostgreSQL servers for the distributed tests: each test file starts its own
 * on free loopback ports in a temp folder (so fault tests can stop and restart them), from the
 * Debian binaries (.ci/run installs redis-server and postgresql). Missing binaries fail the tests
 * with a message saying what to install, never a silent skip.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { tmpDir } from '../../core/test/helpers/fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function findBin(name: string, dirs: string[]): string {
  for (const d of dirs) {
    const p = path.join(d, name);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`the distributed atlas tests need ${name} (Debian: apt-get install -y redis-server postgresql); not found in ${dirs.join(', ')}`);
}

function pgBinDir(): string[] {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  return [...versions.map((v) => path.join(root, v, 'bin')), ...(process.env.PATH ?? '').split(':')];
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what: string, ok: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what} did not come up in ${ms / 1000} s`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

export class TestRedis {
  private proc: ChildProcess | null = null;
  readonly url: string;
  private constructor(readonly port: number, readonly dir: string) {
    this.url = `redis://127.0.0.1:${port}`;
  }

  static async start(): Promise<TestRedis> {
    const r = new TestRedis(await freePort(), tmpDir('sp-redis-'));
    await r.up();
    return r;
  }

  /** AOF on, fsync always, noeviction: what BullMQ asks of a production Redis, so a restart keeps the queue. */
  async up(): Promise<void> {
    const bin = findBin('redis-server', (process.env.PATH ?? '').split(':').concat('/usr/bin', '/usr/sbin'));
    this.proc = spawn(bin, ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'always',
      '--save', '', '--maxmemory-policy', 'noeviction', '--protected-mode', 'yes'], { stdio: 'ignore' });
    await waitFor('redis-server', () => canConnect(this.port));
  }

  /** Stops Redis (SIGTERM: it flushes the AOF) and waits for the process to end. */
  async down(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await gone;
  }

  async restart(): Promise<void> {
    await this.down();
    await this.up();
  }
}

export class TestPostgres {
  readonly user = 'sp';
  readonly password = 'Sup3r-s3cret-pw';
  private asUser: string[] = [];
  private constructor(readonly port: number, readonly dir: string) {}

  get url(): string {
    return `postgres://${this.user}:${this.password}@127.0.0.1:${this.port}/atlas`;
  }

  static async start(): Promise<TestPostgres> {
    const base = tmpDir('sp-pg-');
    const p = new TestPostgres(await freePort(), path.join(base, 'data'));
    const bins = pgBinDir();
    const initdb = findBin('initdb', bins);
    // initdb refuses root: run the server as the Debian package's postgres user then.
    if (os.userInfo().uid === 0) {
      const runuser = findBin('runuser', ['/usr/sbin', '/usr/bin', '/sbin', '/bin']);
      p.asUser = [runuser, '-u', 'postgres', '--'];
      fs.chmodSync(base, 0o777);
    }
    const pw = path.join(base, 'pw');
    fs.writeFileSync(pw, p.password);
    fs.chmodSync(pw, 0o644);
    const r = p.run(initdb, ['-D', p.dir, '-U', p.user, '--pwfile', pw, '--auth-host', 'scram-sha-256', '--auth-local', 'trust', '-E', 'UTF8', '--locale', 'C']);
    if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr}`);
    await p.up();
    const c = new pg.Client({ connectionString: p.url.replace('/atlas', '/postgres') });
    await c.connect();
    await c.query('CREATE DATABASE atlas');
    await c.end();
    return p;
  }

  private run(bin: string, args: string[]) {
    const [cmd, ...pre] = this.asUser.length ? this.asUser : [bin];
    return spawnSync(cmd, this.asUser.length ? [...pre, bin, ...args] : args, { encoding: 'utf8' });
  }

  async up(): Promise<void> {
    const pgCtl = findBin('pg_ctl', pgBinDir());
    const r = this.run(pgCtl, ['-D', this.dir, '-l', path.join(this.dir, '..', 'log'), '-w', '-o',
      `-p ${this.port} -c listen_addresses=127.0.0.1 -k ${path.dirname(this.dir)} -c fsync=off -c max_connections=50`, 'start']);
    if (r.status !== 0) throw new Error(`postgres did not start: ${r.stdout}${r.stderr}`);
    await waitFor('postgres', () => canConnect(this.port));
  }

  async down(): Promise<void> {
    this.run(findBin('pg_ctl', pgBinDir()), ['-D', this.dir, '-m', 'fast', '-w', 'stop']);
  }
}
