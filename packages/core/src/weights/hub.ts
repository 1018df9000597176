/**
 * Finding GPT-2 checkpoints on disk and fetching them from the Hugging Face hub.
 *
 * Local search order (`weightsDirs`): $SP_WEIGHTS_DIR, the repo's `weights/` folder (when running
 * from a checkout), then the user cache (`$XDG_CACHE_HOME` or `~/.cache`, plus `/sp`).
 * Downloads stream each file to `<file>.part`, check its size (and sha256 for LFS files) and only
 * then rename it, so an interrupted download never leaves a file that looks complete; a failed one
 * leaves nothing it made (files, `.part` files, folders).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type cliProgressTypes from 'cli-progress';
import { createRequire } from 'node:module';
import { SpError } from '../errors.js';
import { PRESET_NAMES, type PresetName } from '../model/config.js';

export const HUB_REPOS: Record<PresetName, string> = {
  gpt2: 'openai-community/gpt2',
  'gpt2-medium': 'openai-community/gpt2-medium',
  'gpt2-large': 'openai-community/gpt2-large',
  'gpt2-xl': 'openai-community/gpt2-xl',
  distilgpt2: 'distilbert/distilgpt2',
};

export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];

/** Files a download may lack (404 -> skipped). */
const OPTIONAL_FILES = new Set(['tokenizer.json']);
const DEFAULT_HUB = 'https://huggingface.co';
const DEFAULT_TIMEOUT_MS = 60_000;
const MAX_REDIRECTS = 10;

const isPreset = (name: string): name is PresetName => (PRESET_NAMES as string[]).includes(name);
const presetList = (): string => PRESET_NAMES.join(', ');

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function cacheBase(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg ? xdg : path.join(os.homedir(), '.cache'), 'sp');
}

/** The nearest ancestor of this module holding both pnpm-workspace.yaml and a weights/ folder. */
function repoWeightsDir(): string | undefined {
  let dir: string;
  try {
    dir = path.dirname(fileURLToPath(import.meta.url));
  } catch {
    return undefined;
  }
  for (;;) {
    if (isFile(path.join(dir, 'pnpm-workspace.yaml')) && isDir(path.join(dir, 'weights'))) {
      return path.join(dir, 'weights');
    }
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** Where local checkpoints are looked for, in order (absolute, deduplicated). */
export function weightsDirs(): string[] {
  const dirs: string[] = [];
  const env = process.env.SP_WEIGHTS_DIR;
  if (env) dirs.push(path.resolve(env));
  const repo = repoWeightsDir();
  if (repo) dirs.push(repo);
  dirs.push(cacheBase());
  return [...new Set(dirs)];
}

/**
 * The first `<base>/<name>` (over `weightsDirs()`) holding model.safetensors; config.json is
 * optional (the config is then inferred from the tensor shapes, as for `--model DIR`).
 */
export function findLocalModel(name: string): string | undefined {
  if (!name || name.includes('/') || name.includes('\\') || name === '.' || name === '..') return undefined;
  for (const base of weightsDirs()) {
    const dir = path.join(base, name);
    if (isFile(path.join(dir, 'model.safetensors'))) return dir;
  }
  return undefined;
}

export interface DownloadOptions {
  /** Target directory; default `$SP_WEIGHTS_DIR/<name>`, else `<cache>/sp/<name>`. */
  dest?: string;
  /** Default `process.env.SP_HUB_URL ?? 'https://huggingface.co'`. */
  hubUrl?: string;
  /** cli-progress bar per file on stderr; default: only when stderr is a TTY. */
  progress?: boolean;
  onProgress?: (file: string, done: number, total: number) => void;
  /** Default 'main'. */
  revision?: string;
  fetchImpl?: typeof fetch;
  /** Abort when no response / no data arrives for this long (default 60 s). */
  timeoutMs?: number;
}

function defaultDest(name: string): string {
  const env = process.env.SP_WEIGHTS_DIR;
  return env ? path.resolve(env, name) : path.join(cacheBase(), name);
}

function offlineError(name: string, hub: string, cause?: unknown): SpError {
  return new SpError(
    'OFFLINE',
    `cannot download ${name} from ${hub} (offline?): run \`sp download ${name}\` where the hub is reachable, or pass --model DIR / set SP_WEIGHTS_DIR`,
    { cause },
  );
}

/** A 64-hex sha256 from an etag-like header (quotes and W/ stripped), else undefined. */
function sha256FromEtag(v: string | null): string | undefined {
  if (!v) return undefined;
  const s = v.trim().replace(/^W\//i, '').replace(/^"|"$/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(s) ? s : undefined;
}

function parseSize(v: string | null): number | undefined {
  if (v === null || !/^\s*\d+\s*$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Restartable inactivity timer wired to an AbortController. */
class Watchdog {
  readonly controller = new AbortController();
  timedOut = false;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly ms: number) {
    this.kick();
  }
  kick(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.ms > 0 && Number.isFinite(this.ms)) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.controller.abort(new Error(`no data for ${this.ms} ms`));
      }, this.ms);
      this.timer.unref?.();
    }
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

interface Fetched {
  res: Response;
  url: string;
  /** sha256 announced by any hop (x-linked-etag preferred, else a sha256-looking etag). */
  sha256?: string;
  /** x-linked-size announced by any hop. */
  linkedSize?: number;
}

async function cancelBody(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    /* ignore */
  }
}

/**
 * GET following redirects by hand: the hub announces `x-linked-etag` / `x-linked-size` on the 302
 * to its CDN, and those headers would be lost if fetch followed the redirect itself.
 */
async function fetchFollowing(fetchImpl: typeof fetch, url: string, signal: AbortSignal, watchdog: Watchdog): Promise<Fetched> {
  let linkedEtag: string | undefined;
  let etag: string | undefined;
  let linkedSize: number | undefined;
  for (let hop = 0; ; hop++) {
    const res = await fetchImpl(url, { redirect: 'manual', signal, headers: { 'accept-encoding': 'identity' } });
    watchdog.kick();
    linkedEtag ??= sha256FromEtag(res.headers.get('x-linked-etag'));
    linkedSize ??= parseSize(res.headers.get('x-linked-size'));
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location && hop < MAX_REDIRECTS) {
      await cancelBody(res);
      url = new URL(location, url).toString();
      continue;
    }
    etag = sha256FromEtag(res.headers.get('etag'));
    return { res, url, sha256: linkedEtag ?? etag, linkedSize };
  }
}

// Loaded on first use: importing it costs ~20 ms that commands reading a local file never need.
const requireLazy = createRequire(import.meta.url);

function makeBar(file: string): cliProgressTypes.SingleBar {
  const cliProgress = requireLazy('cli-progress') as typeof cliProgressTypes;
  return new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${file} [{bar}] {percentage}% | {doneMB}/{totalMB} MB | {speed} MB/s | ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
}

const mb = (n: number): string => (n / 1e6).toFixed(1);

/**
 * Download a preset's files (config.json, model.safetensors, optional tokenizer.json) into `dest`.
 * Returns the model directory. Files already present with the announced size are kept.
 */
export async function downloadModel(name: string, opts: DownloadOptions = {}): Promise<string> {
  if (!isPreset(name)) {
    throw new SpError('BAD_INPUT', `cannot download "${name}": not one of ${presetList()}`);
  }
  const repo = HUB_REPOS[name];
  const hub = (opts.hubUrl ?? process.env.SP_HUB_URL ?? DEFAULT_HUB).replace(/\/+$/, '');
  const revision = opts.revision ?? 'main';
  const fetchImpl = opts.fetchImpl ?? fetch;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const showBar = opts.progress ?? Boolean(process.stderr.isTTY);
  const dest = path.resolve(opts.dest ?? defaultDest(name));

  let created: string | undefined; // the topmost folder this call made
  try {
    created = await fsp.mkdir(dest, { recursive: true });
  } catch (e) {
    throw new SpError('BAD_INPUT', `cannot create ${dest}: ${(e as Error).message}`, { cause: e });
  }
  const added: string[] = []; // files this call put in place that were not there before
  try {
    await fetchFiles(name, opts, { repo, hub, revision, fetchImpl, timeoutMs, showBar, dest }, added);
  } catch (e) {
    // Leave nothing that was not there: a half-downloaded model would be found (and fail) later.
    for (const f of added) await fsp.rm(f, { force: true }).catch(() => undefined);
    if (created) {
      for (let d = dest; ; d = path.dirname(d)) {
        if (!(await fsp.rmdir(d).then(() => true, () => false)) || d === created || path.dirname(d) === d) break;
      }
    }
    throw e;
  }
  return dest;
}

interface FetchPlan {
  repo: string;
  hub: string;
  revision: string;
  fetchImpl: typeof fetch;
  timeoutMs: number;
  showBar: boolean;
  dest: string;
}

async function fetchFiles(name: string, opts: DownloadOptions, plan: FetchPlan, added: string[]): Promise<void> {
  const { repo, hub, revision, fetchImpl, timeoutMs, showBar, dest } = plan;
  for (const file of MODEL_FILES) {
    const url = `${hub}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
    const target = path.join(dest, file);
    const part = `${target}.part`;
    const watchdog = new Watchdog(timeoutMs);
    try {
      let fetched: Fetched;
      try {
        fetched = await fetchFollowing(fetchImpl, url, watchdog.controller.signal, watchdog);
      } catch (e) {
        throw offlineError(name, hub, e);
      }
      const { res } = fetched;
      if (!res.ok) {
        await cancelBody(res);
        if (res.status === 404 && OPTIONAL_FILES.has(file)) continue;
        const what = `cannot download ${name}: GET ${url} returned ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
        if (res.status === 401 || res.status === 403 || res.status === 404 || res.status === 410) {
          throw new SpError('NOT_FOUND', what);
        }
        throw new SpError('OFFLINE', `${what} (hub unavailable?): retry later, or pass --model DIR / set SP_WEIGHTS_DIR`);
      }
      const encoding = (res.headers.get('content-encoding') ?? 'identity').toLowerCase();
      const contentLength = encoding === 'identity' ? parseSize(res.headers.get('content-length')) : undefined;
      const expected = contentLength ?? fetched.linkedSize;

      // Already there with the right size: keep it.
      if (expected !== undefined) {
        const st = await fsp.stat(target).catch(() => undefined);
        if (st?.isFile() && st.size === expected) {
          await cancelBody(res);
          opts.onProgress?.(file, expected, expected);
          continue;
        }
      }

      const total = expected ?? 0;
      const hash = fetched.sha256 ? createHash('sha256') : undefined;
      const bar = showBar ? makeBar(file) : undefined;
      const started = Date.now();
      let done = 0;
      bar?.start(total, 0, { doneMB: mb(0), totalMB: total ? mb(total) : '?', speed: '0.0' });
      const fh = await fsp.open(part, 'w');
      try {
        try {
          if (res.body) {
            for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
              watchdog.kick();
              await fh.write(chunk);
              hash?.update(chunk);
              done += chunk.byteLength;
              opts.onProgress?.(file, done, total);
              if (bar) {
                const secs = Math.max((Date.now() - started) / 1000, 1e-3);
                if (done > bar.getTotal()) bar.setTotal(done);
                bar.update(done, { doneMB: mb(done), totalMB: total ? mb(total) : '?', speed: mb(done / secs) });
              }
            }
          }
        } catch (e) {
          const why = watchdog.timedOut ? `timed out after ${timeoutMs} ms without data` : `connection lost after ${done} bytes`;
          throw new SpError(
            'OFFLINE',
            `download of ${file} for ${name} from ${hub} interrupted (${why}): run \`sp download ${name}\` again, or pass --model DIR / set SP_WEIGHTS_DIR`,
            { cause: e },
          );
        } finally {
          bar?.stop();
          await fh.close();
        }
        if (expected !== undefined && done !== expected) {
          throw new SpError('BAD_FILE', `incomplete download of ${file} for ${name}: expected ${expected} bytes, got ${done}`);
        }
        if (hash && fetched.sha256) {
          const got = hash.digest('hex');
          if (got !== fetched.sha256) {
            throw new SpError('BAD_FILE', `checksum mismatch for ${file}: expected sha256 ${fetched.sha256}, got ${got}`);
          }
        }
        const existed = isFile(target);
        await fsp.rename(part, target);
        if (!existed) added.push(target);
      } catch (e) {
        await fsp.rm(part, { force: true }).catch(() => undefined);
        throw e;
      }
    } catch (e) {
      if (e instanceof SpError) throw e;
      if (watchdog.timedOut) throw offlineError(name, hub, e);
      throw new SpError('BAD_FILE', `cannot write ${target}: ${(e as Error).message}`, { cause: e });
    } finally {
      watchdog.stop();
    }
  }
}

/**
 * `--model` resolution: an existing directory is used as is (made absolute); a preset name is
 * looked up locally, then downloaded (unless `download === false`); anything else is NOT_FOUND.
 */
export async function resolveModel(nameOrDir: string, opts: { download?: boolean } & DownloadOptions = {}): Promise<string> {
  if (isDir(nameOrDir)) return path.resolve(nameOrDir);
  if (isPreset(nameOrDir)) {
    const local = findLocalModel(nameOrDir);
    if (local) return local;
    if (opts.download === false) {
      throw new SpError(
        'NOT_FOUND',
        `model ${nameOrDir} not found in ${weightsDirs().join(', ')}: run \`sp download ${nameOrDir}\`, or pass --model DIR / set SP_WEIGHTS_DIR`,
      );
    }
    const { download: _download, ...dl } = opts;
    return downloadModel(nameOrDir, dl);
  }
  throw new SpError('NOT_FOUND', `unknown model "${nameOrDir}": not a directory and not one of ${presetList()} (use --model DIR)`);
}
