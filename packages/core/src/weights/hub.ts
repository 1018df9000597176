/**
 * Finding GPT-2 checkpoints on disk and fetching them from the Hugging Face hub.
 *
 * A model is named as transformers / transformers.js name it: a directory, a preset (`gpt2`, ...,
 * mapped to its hub repo, `HUB_REPOS`), or any hub repo id `owner/name[@revision]` whose config.json
 * says `"model_type": "gpt2"`. Lookup order (`resolveModel`): an existing directory; then, for a
 * preset, `$SP_WEIGHTS_DIR/<name>` and the repo's `weights/<name>`; the shared Hugging Face cache
 * (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub` or
 * `~/.cache/huggingface/hub`); sp's old cache `~/.cache/sp/<name>`; then a download into the
 * Hugging Face cache in the layout Python's huggingface_hub writes (blobs/<etag>,
 * snapshots/<commit>/<file> -> ../../blobs/<etag>, refs/<revision>), so Python and sp share one copy.
 *
 * Listing and downloading go through `@huggingface/hub` (modelInfo, listFiles, downloadFile), with
 * sp's guarantees on top: each file streams into `<blob>.incomplete` (`<file>.part` for `dest`),
 * its size and hash (LFS sha256, or the git blob id of small files) are checked, and only then is it
 * renamed and linked; a failed download leaves nothing it made (files, links, refs, folders).
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
import { PRESET_NAMES, type PresetName } from '../config.js';
import { PICKLE_ADVICE, SHARD_INDEX, readShardIndex } from './checkpoint.js';

export const HUB_REPOS: Record<PresetName, string> = {
  gpt2: 'openai-community/gpt2',
  'gpt2-medium': 'openai-community/gpt2-medium',
  'gpt2-large': 'openai-community/gpt2-large',
  'gpt2-xl': 'openai-community/gpt2-xl',
  distilgpt2: 'distilbert/distilgpt2',
};

/** What an unsharded download fetches (tokenizer.json only when the repo has it). */
export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];

/** Files a download may lack (absent from the listing -> skipped). */
const OPTIONAL_FILES = new Set(['tokenizer.json']);
const PICKLE_FILES = ['pytorch_model.bin', 'pytorch_model.bin.index.json'];
const DEFAULT_HUB = 'https://huggingface.co';
const DEFAULT_TIMEOUT_MS = 60_000;
const COMMIT_RE = /^[0-9a-f]{40}$/;

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
    return fs.statSync(p).isFile(); // follows links: a dangling snapshot link is not a file
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Environment (the names and defaults huggingface_hub uses)

const truthy = (v: string | undefined): boolean => ['1', 'on', 'yes', 'true'].includes((v ?? '').trim().toLowerCase());

/** `HF_HUB_OFFLINE=1` (or ON/YES/TRUE): never touch the network, use only what is cached. */
export function hfOffline(): boolean {
  return truthy(process.env.HF_HUB_OFFLINE);
}

function xdgCache(): string {
  return process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
}

function hfHome(): string {
  return process.env.HF_HOME || path.join(xdgCache(), 'huggingface');
}

/** The shared Hugging Face hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hfHubCache(): string {
  return path.resolve(process.env.HF_HUB_CACHE || process.env.HUGGINGFACE_HUB_CACHE || path.join(hfHome(), 'hub'));
}

/** sp's own cache from before the HF cache was shared (still searched). */
function spCacheDir(): string {
  return path.join(xdgCache(), 'sp');
}

function hubUrlOf(opts: DownloadOptions): string {
  return (opts.hubUrl ?? (process.env.HF_ENDPOINT || process.env.SP_HUB_URL || DEFAULT_HUB)).replace(/\/+$/, '');
}

/** $HF_TOKEN, else the token `huggingface-cli login` saved ($HF_TOKEN_PATH or $HF_HOME/token). */
function hfToken(opts: DownloadOptions): string | undefined {
  if (opts.accessToken !== undefined) return opts.accessToken || undefined;
  const env = process.env.HF_TOKEN || process.env.HUGGING_FACE_HUB_TOKEN;
  if (env) return env.trim();
  try {
    const t = fs.readFileSync(process.env.HF_TOKEN_PATH || path.join(hfHome(), 'token'), 'utf8').trim();
    return t || undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Names

export interface ModelSpec {
  /** Hub repo id `owner/name`. */
  repo: string;
  /** As written after `@`; undefined: the default branch (`main`). */
  revision?: string;
  /** The preset this names, if any (`gpt2` or `openai-community/gpt2`). */
  preset?: PresetName;
}

// Hub names: letters, digits, `-`, `_`, `.`; no `--` or `..` (they would break the cache folder name).
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const okName = (s: string): boolean => NAME_RE.test(s) && !s.includes('--') && !s.includes('..') && s.length <= 96;

/** `gpt2`, `gpt2@rev`, `owner/name`, `owner/name@rev` (rev may be `refs/pr/3`); else undefined. */
export function parseModelSpec(s: string): ModelSpec | undefined {
  const at = s.indexOf('@');
  const name = at < 0 ? s : s.slice(0, at);
  const revision = at < 0 ? undefined : s.slice(at + 1);
  if (revision !== undefined && (!revision || /\s/.test(revision) || revision.split('/').some((p) => p === '' || p === '.' || p === '..'))) return undefined;
  if (isPreset(name)) return { repo: HUB_REPOS[name], revision, preset: name };
  const parts = name.split('/');
  if (parts.length !== 2 || !parts.every(okName)) return undefined;
  const preset = (Object.keys(HUB_REPOS) as PresetName[]).find((p) => HUB_REPOS[p] === name);
  return { repo: name, revision, preset };
}

const specLabel = (spec: ModelSpec): string => (spec.preset && spec.repo === HUB_REPOS[spec.preset] && !spec.revision ? spec.preset : spec.repo) + (spec.revision ? `@${spec.revision}` : '');

// ---------------------------------------------------------------------------------------------
// Local lookup

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

/** sp-layout folders (`<base>/<preset>/`) searched, in order: $SP_WEIGHTS_DIR, the repo's weights/, ~/.cache/sp. */
export function weightsDirs(): string[] {
  const dirs: string[] = [];
  const env = process.env.SP_WEIGHTS_DIR;
  if (env) dirs.push(path.resolve(env));
  const repo = repoWeightsDir();
  if (repo) dirs.push(repo);
  dirs.push(spCacheDir());
  return [...new Set(dirs)];
}

/** A directory holding weights sp can read: model.safetensors, or an index whose shards are all there. */
export function isModelDir(dir: string): boolean {
  if (isFile(path.join(dir, 'model.safetensors'))) return true;
  if (!isFile(path.join(dir, SHARD_INDEX))) return false;
  try {
    return [...new Set(readShardIndex(dir).values())].every((f) => isFile(path.join(dir, f)));
  } catch {
    return true; // present but broken: let Checkpoint.open say what is wrong with it
  }
}

/**
 * The first `<base>/<name>` (over `weightsDirs()`) holding weights; config.json is optional (the
 * config is then inferred from the tensor shapes, as for `--model DIR`).
 */
export function findLocalModel(name: string): string | undefined {
  if (!name || name.includes('/') || name.includes('\\') || name === '.' || name === '..') return undefined;
  for (const base of weightsDirs()) {
    const dir = path.join(base, name);
    if (isModelDir(dir)) return dir;
  }
  return undefined;
}

/** `<cache>/models--owner--name` (huggingface_hub's repo folder name). */
export function repoCacheDir(repo: string, cacheDir = hfHubCache()): string {
  return path.join(cacheDir, `models--${repo.split('/').join('--')}`);
}

/**
 * The snapshot folder of `repo` at `revision` in the HF cache (a commit hash, or a branch/tag/PR
 * ref recorded in refs/), if it holds weights; no network.
 */
export function findInHfCache(repo: string, revision = 'main', cacheDir = hfHubCache()): string | undefined {
  const folder = repoCacheDir(repo, cacheDir);
  let commit: string | undefined = COMMIT_RE.test(revision) ? revision : undefined;
  if (!commit) {
    try {
      commit = fs.readFileSync(path.join(folder, 'refs', revision), 'utf8').trim();
    } catch {
      return undefined;
    }
  }
  if (!COMMIT_RE.test(commit)) return undefined;
  const snap = path.join(folder, 'snapshots', commit);
  return isModelDir(snap) ? snap : undefined;
}

/** Refuses a config.json whose model_type is not gpt2 (missing or unreadable: left to Checkpoint). */
function checkModelType(dir: string, label: string): void {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  } catch {
    return;
  }
  const t = (raw as { model_type?: unknown } | null)?.model_type;
  if (t !== undefined && t !== 'gpt2') {
    throw new SpError('UNSUPPORTED', `${label} is a ${JSON.stringify(t)} model (config.json model_type); sp runs GPT-2 architecture models only (model_type "gpt2")`);
  }
}

/** Every place `spec` is looked for, in order (explains a NOT_FOUND). */
function searchedPlaces(spec: ModelSpec): string[] {
  const out: string[] = [];
  const legacy = spec.preset && !spec.revision ? weightsDirs().map((d) => path.join(d, spec.preset!)) : [];
  out.push(...legacy.slice(0, -1), repoCacheDir(spec.repo), ...legacy.slice(-1));
  return out;
}

/** The local copy of `spec` in lookup order (see the module comment), else undefined. */
function findLocal(spec: ModelSpec): string | undefined {
  const legacy = spec.preset && !spec.revision ? weightsDirs() : [];
  const spCache = spCacheDir();
  for (const base of legacy) {
    if (base === spCache) continue; // after the HF cache
    const d = path.join(base, spec.preset!);
    if (isModelDir(d)) return d;
  }
  const hf = findInHfCache(spec.repo, spec.revision ?? 'main');
  if (hf) return hf;
  if (legacy.includes(spCache)) {
    const d = path.join(spCache, spec.preset!);
    if (isModelDir(d)) return d;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Download

export interface DownloadOptions {
  /** Write the files flat into this directory instead of the HF cache (`sp download --dest`). */
  dest?: string;
  /** HF cache to download into; default `hfHubCache()`. */
  cacheDir?: string;
  /** Default $HF_ENDPOINT, else $SP_HUB_URL, else https://huggingface.co. */
  hubUrl?: string;
  /** Bearer token for gated/private repos; default $HF_TOKEN (or the saved `huggingface-cli login` token). */
  accessToken?: string;
  /** cli-progress bar per file on stderr; default: only when stderr is a TTY. */
  progress?: boolean;
  onProgress?: (file: string, done: number, total: number) => void;
  /** Branch, tag, commit or `refs/pr/N`; default the `@rev` of the name, else 'main'. */
  revision?: string;
  fetchImpl?: typeof fetch;
  /** Abort when no response / no data arrives for this long (default 60 s). */
  timeoutMs?: number;
}

type HubLib = typeof import('@huggingface/hub');
type ListFileEntry = import('@huggingface/hub').ListFileEntry;

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

interface Ctx {
  lib: HubLib;
  spec: ModelSpec;
  label: string;
  repo: string;
  revision: string;
  hub: string;
  token: string | undefined;
  baseFetch: typeof fetch;
  timeoutMs: number;
  showBar: boolean;
  opts: DownloadOptions;
  /** Files and links this call put in place that were not there before (removed on failure). */
  added: string[];
  /** Folders this call made (removed on failure when empty). */
  madeDirs: string[];
}

/** A fetch for one request phase: aborted by `wd`, remembering the last HTTP answer. */
function phaseFetch(ctx: Ctx, wd: Watchdog, last: { status?: number; url?: string }): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const res = await ctx.baseFetch(input, { ...init, signal: wd.controller.signal });
    wd.kick();
    last.status = res.status;
    last.url = String(input instanceof Request ? input.url : input);
    return res;
  }) as typeof fetch;
}

function offlineError(ctx: { label: string; hub: string }, cause?: unknown): SpError {
  return new SpError(
    'OFFLINE',
    `cannot download ${ctx.label} from ${ctx.hub} (offline?): run \`sp download ${ctx.label}\` where the hub is reachable, or pass --model DIR (HF_HUB_OFFLINE=1 uses only cached models)`,
    { cause },
  );
}

function httpError(ctx: Ctx, status: number, what: string): SpError {
  const head = `cannot download ${ctx.label}: ${what} returned ${status}`;
  if (status === 401 || status === 403) {
    const fix = ctx.token
      ? `the token in HF_TOKEN has no access to ${ctx.repo}: accept the model's license at ${ctx.hub}/${ctx.repo} with that account, or use a token that can read it`
      : `${ctx.repo} is gated or private (or does not exist): set HF_TOKEN to a token that can read it, after accepting the model's license at ${ctx.hub}/${ctx.repo}`;
    return new SpError('NOT_FOUND', `${head}; ${fix}`);
  }
  if (status === 404 || status === 410) return new SpError('NOT_FOUND', `${head} (no such repo, revision or file)`);
  return new SpError('OFFLINE', `${head} (hub unavailable?): retry later, or pass --model DIR`);
}

/** Turns whatever a hub call threw into one SpError line. */
function hubFailure(ctx: Ctx, e: unknown, wd: Watchdog, last: { status?: number; url?: string }, what: string): SpError {
  if (SpError.is(e)) return e;
  if (wd.timedOut) return offlineError(ctx, e);
  const status = (e as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number') return httpError(ctx, status, what);
  if (e instanceof TypeError && /access token/i.test(e.message)) {
    return new SpError('BAD_INPUT', `HF_TOKEN is not a Hugging Face access token (${e.message})`);
  }
  if (last.status !== undefined && last.status >= 400) return httpError(ctx, last.status, what);
  return offlineError(ctx, e);
}

async function ensureDir(ctx: Ctx, dir: string): Promise<void> {
  let first: string | undefined;
  try {
    first = await fsp.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new SpError('BAD_INPUT', `cannot create ${dir}: ${(e as Error).message}`, { cause: e });
  }
  if (first) for (let d = dir; ; d = path.dirname(d)) {
    ctx.madeDirs.push(d);
    if (d === first || path.dirname(d) === d) break;
  }
}

/** Where one file goes: `blob` (the content) and, in the HF cache, the snapshot `link` to it. */
interface Target {
  blob: string;
  link?: string;
  incomplete: string;
}

/**
 * Download a model into the Hugging Face cache (or flat into `opts.dest`) and return its folder
 * (the snapshot folder `…/snapshots/<commit>`). Files already there are kept.
 */
export async function downloadModel(nameOrRepo: string, opts: DownloadOptions = {}): Promise<string> {
  const spec = parseModelSpec(nameOrRepo);
  if (!spec) {
    throw new SpError('BAD_INPUT', `unknown model "${nameOrRepo}": not one of ${presetList()}, and not a hub repo id owner/name[@revision]`);
  }
  if (opts.revision !== undefined) spec.revision = opts.revision;
  const hub = hubUrlOf(opts);
  const label = specLabel(spec);
  if (hfOffline()) {
    throw new SpError('OFFLINE', `cannot download ${label}: HF_HUB_OFFLINE is set; unset it and run \`sp download ${label}\` where the hub is reachable, or pass --model DIR`);
  }
  const ctx: Ctx = {
    lib: await import('@huggingface/hub'),
    spec,
    label,
    repo: spec.repo,
    revision: spec.revision ?? 'main',
    hub,
    token: hfToken(opts),
    baseFetch: opts.fetchImpl ?? fetch,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    showBar: opts.progress ?? Boolean(process.stderr.isTTY),
    opts,
    added: [],
    madeDirs: [],
  };
  try {
    return await fetchRepo(ctx);
  } catch (e) {
    // Leave nothing that was not there: a half-downloaded model would be found (and fail) later.
    for (const f of ctx.added.reverse()) await fsp.rm(f, { force: true }).catch(() => undefined);
    for (const d of [...new Set(ctx.madeDirs)].sort((a, b) => b.length - a.length)) await fsp.rmdir(d).catch(() => undefined);
    throw e;
  }
}

async function fetchRepo(ctx: Ctx): Promise<string> {
  const { lib, repo, hub } = ctx;
  // 1. The commit the revision points to, and the files at that commit.
  let commit: string;
  let entries: ListFileEntry[];
  {
    const wd = new Watchdog(ctx.timeoutMs);
    const last: { status?: number; url?: string } = {};
    const f = phaseFetch(ctx, wd, last);
    let what = `the model info of ${repo}@${ctx.revision}`;
    try {
      const info = await lib.modelInfo({ name: repo, revision: ctx.revision, hubUrl: hub, accessToken: ctx.token, fetch: f, additionalFields: ['sha'] });
      const sha = (info as { sha?: unknown }).sha;
      if (typeof sha !== 'string' || !COMMIT_RE.test(sha)) throw new SpError('BAD_FILE', `the hub at ${hub} gave no commit hash for ${repo}@${ctx.revision}`);
      commit = sha;
      what = `the file list of ${repo}@${commit.slice(0, 8)}`;
      entries = [];
      for await (const e of lib.listFiles({ repo, revision: commit, hubUrl: hub, accessToken: ctx.token, fetch: f })) if (e.type === 'file') entries.push(e);
    } catch (e) {
      throw hubFailure(ctx, e, wd, last, what);
    } finally {
      wd.stop();
    }
  }
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const need = (file: string): ListFileEntry => {
    const e = byPath.get(file);
    if (!e) throw new SpError('NOT_FOUND', `cannot download ${ctx.label}: ${repo}@${commit.slice(0, 8)} has no ${file}`);
    return e;
  };

  const dest = ctx.opts.dest ? path.resolve(ctx.opts.dest) : undefined;
  const folder = repoCacheDir(repo, ctx.opts.cacheDir ? path.resolve(ctx.opts.cacheDir) : hfHubCache());
  const dir = dest ?? path.join(folder, 'snapshots', commit);
  await ensureDir(ctx, dir);
  if (!dest) await ensureDir(ctx, path.join(folder, 'blobs'));
  const target = (file: string, e: ListFileEntry): Target => {
    if (dest) return { blob: path.join(dest, file), incomplete: path.join(dest, file) + '.part' };
    const blob = path.join(folder, 'blobs', blobName(e));
    return { blob, link: path.join(dir, file), incomplete: `${blob}.incomplete` };
  };
  const get = async (file: string, e = need(file)): Promise<void> => fetchFile(ctx, file, e, commit, target(file, e));

  // 2. config.json first: a repo of another architecture is refused before any weights move.
  await get('config.json');
  checkModelType(dir, `${repo}${ctx.spec.revision ? '@' + ctx.spec.revision : ''}`);

  // 3. Weights: model.safetensors, else the sharded set; pickle-only repos are refused.
  const weights: string[] = [];
  if (byPath.has('model.safetensors')) weights.push('model.safetensors');
  else if (byPath.has(SHARD_INDEX)) {
    await get(SHARD_INDEX);
    for (const shard of new Set(readShardIndex(dir).values())) {
      if (!byPath.has(shard)) throw new SpError('BAD_FILE', `cannot download ${ctx.label}: ${SHARD_INDEX} names ${shard}, which ${repo}@${commit.slice(0, 8)} does not have`);
      weights.push(shard);
    }
  } else {
    const pickle = PICKLE_FILES.find((f) => byPath.has(f));
    if (pickle) throw new SpError('UNSUPPORTED', `cannot use ${ctx.label}: ${repo}@${commit.slice(0, 8)} has only ${pickle}; ${PICKLE_ADVICE}`);
    need('model.safetensors');
  }
  for (const file of MODEL_FILES) if (OPTIONAL_FILES.has(file) && byPath.has(file)) await get(file);
  for (const file of weights) await get(file);

  // 4. refs/<revision> -> commit, as huggingface_hub writes it (not for a commit-hash revision).
  if (!dest && ctx.revision !== commit) {
    const ref = path.join(folder, 'refs', ctx.revision);
    await ensureDir(ctx, path.dirname(ref));
    const existed = fs.existsSync(ref);
    const tmp = `${ref}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, commit);
    await fsp.rename(tmp, ref);
    if (!existed) ctx.added.push(ref);
  }
  return dir;
}

/** huggingface_hub's blob name: the LFS sha256, else the git blob id (the hub's ETag). */
function blobName(e: ListFileEntry): string {
  const name = e.lfs?.oid ?? e.oid;
  if (!name || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(name)) throw new SpError('BAD_FILE', `the hub's file list gives ${e.path} no usable oid (${JSON.stringify(name)})`);
  return name;
}

/** Hash that the listing promises for this file's bytes: sha256 for LFS, git's sha1("blob <n>\0"+bytes) otherwise. */
function expectedHash(e: ListFileEntry, size: number): { algo: 'sha256' | 'sha1'; hex: string; prefix?: Buffer } | undefined {
  if (e.lfs?.oid && /^[0-9a-f]{64}$/.test(e.lfs.oid)) return { algo: 'sha256', hex: e.lfs.oid };
  if (e.oid && /^[0-9a-f]{40}$/.test(e.oid)) return { algo: 'sha1', hex: e.oid, prefix: Buffer.from(`blob ${size}\0`) };
  return undefined;
}

async function linkInto(ctx: Ctx, blob: string, link: string): Promise<void> {
  await ensureDir(ctx, path.dirname(link));
  const existed = fs.existsSync(link) || (await fsp.lstat(link).then(() => true, () => false));
  await fsp.rm(link, { force: true });
  try {
    // Relative, as huggingface_hub makes it: the cache folder can be moved.
    await fsp.symlink(path.relative(path.dirname(link), blob), link);
  } catch {
    await fsp.copyFile(blob, link); // no symlinks here (e.g. Windows without developer mode)
  }
  if (!existed) ctx.added.push(link);
}

async function fetchFile(ctx: Ctx, file: string, e: ListFileEntry, commit: string, t: Target): Promise<void> {
  const size = e.lfs?.size ?? e.size;
  const { onProgress } = ctx.opts;
  // Already in place: a snapshot link that resolves, a blob of the right size, a dest file of the right size.
  if (t.link && isFile(t.link) && fs.statSync(t.link).size === size) {
    onProgress?.(file, size, size);
    return;
  }
  const st = await fsp.stat(t.blob).catch(() => undefined);
  if (st?.isFile() && st.size === size) {
    if (t.link) await linkInto(ctx, t.blob, t.link);
    onProgress?.(file, size, size);
    return;
  }

  const wd = new Watchdog(ctx.timeoutMs);
  const last: { status?: number; url?: string } = {};
  const url = `${ctx.hub}/${ctx.repo}/resolve/${encodeURIComponent(commit)}/${file}`;
  const hashSpec = expectedHash(e, size);
  const hash = hashSpec ? createHash(hashSpec.algo) : undefined;
  if (hashSpec?.prefix) hash!.update(hashSpec.prefix);
  const bar = ctx.showBar ? makeBar(file) : undefined;
  const started = Date.now();
  let done = 0;
  try {
    // The listing already gave size and hash, so downloadFile needs no fileDownloadInfo round trip;
    // xet: false keeps it on the plain resolve URL (302 to the CDN), which every hub serves.
    let blob: Blob | null;
    try {
      blob = await ctx.lib.downloadFile({
        repo: ctx.repo,
        path: file,
        revision: commit,
        hubUrl: ctx.hub,
        accessToken: ctx.token,
        fetch: phaseFetch(ctx, wd, last),
        xet: false,
        downloadInfo: { size, etag: blobName(e), url },
      });
    } catch (err) {
      throw hubFailure(ctx, err, wd, last, `GET ${url}`);
    }
    if (!blob) throw httpError(ctx, 404, `GET ${url}`);
    bar?.start(size, 0, { doneMB: mb(0), totalMB: mb(size), speed: '0.0' });
    const fh = await fsp.open(t.incomplete, 'w');
    try {
      try {
        const reader = blob.stream().getReader();
        for (;;) {
          const { done: end, value } = await reader.read();
          if (end) break;
          wd.kick();
          await fh.write(value);
          hash?.update(value);
          done += value.byteLength;
          onProgress?.(file, done, size);
          if (bar) {
            const secs = Math.max((Date.now() - started) / 1000, 1e-3);
            if (done > bar.getTotal()) bar.setTotal(done);
            bar.update(done, { doneMB: mb(done), totalMB: mb(size), speed: mb(done / secs) });
          }
        }
      } catch (err) {
        if (!wd.timedOut && last.status !== undefined && last.status >= 400) throw httpError(ctx, last.status, `GET ${url}`);
        if (done === 0 && !wd.timedOut) throw offlineError(ctx, err);
        const why = wd.timedOut ? `timed out after ${ctx.timeoutMs} ms without data` : `connection lost after ${done} bytes`;
        throw new SpError(
          'OFFLINE',
          `download of ${file} for ${ctx.label} from ${ctx.hub} interrupted (${why}): run \`sp download ${ctx.label}\` again, or pass --model DIR`,
          { cause: err },
        );
      } finally {
        bar?.stop();
        await fh.close();
      }
      if (done !== size) throw new SpError('BAD_FILE', `incomplete download of ${file} for ${ctx.label}: expected ${size} bytes, got ${done}`);
      if (hash && hashSpec) {
        const got = hash.digest('hex');
        if (got !== hashSpec.hex) {
          throw new SpError('BAD_FILE', `checksum mismatch for ${file}: expected ${hashSpec.algo === 'sha256' ? 'sha256' : 'git blob id'} ${hashSpec.hex}, got ${got}`);
        }
      }
      const existed = isFile(t.blob);
      await fsp.rename(t.incomplete, t.blob);
      if (!existed) ctx.added.push(t.blob);
      if (t.link) await linkInto(ctx, t.blob, t.link);
    } catch (err) {
      await fsp.rm(t.incomplete, { force: true }).catch(() => undefined);
      throw err;
    }
  } catch (err) {
    if (SpError.is(err)) throw err;
    if (wd.timedOut) throw offlineError(ctx, err);
    throw new SpError('BAD_FILE', `cannot write ${t.blob}: ${(err as Error).message}`, { cause: err });
  } finally {
    wd.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Resolution

/**
 * `--model` resolution (order in the module comment): an existing directory is used as is (made
 * absolute); a preset or hub repo id is looked up locally, then downloaded into the HF cache
 * (unless `download === false` or HF_HUB_OFFLINE is set); anything else is NOT_FOUND. Models
 * whose config.json names another architecture are refused (UNSUPPORTED).
 */
export async function resolveModel(nameOrDir: string, opts: { download?: boolean } & DownloadOptions = {}): Promise<string> {
  if (isDir(nameOrDir)) {
    const dir = path.resolve(nameOrDir);
    checkModelType(dir, dir);
    return dir;
  }
  const spec = parseModelSpec(nameOrDir);
  if (!spec) {
    throw new SpError('NOT_FOUND', `unknown model "${nameOrDir}": not a directory, not one of ${presetList()}, and not a hub repo id owner/name[@revision] (use --model DIR)`);
  }
  if (opts.revision !== undefined) spec.revision = opts.revision;
  const label = specLabel(spec);
  const local = findLocal(spec);
  if (local) {
    checkModelType(local, label);
    return local;
  }
  if (opts.download === false || hfOffline()) {
    const why = opts.download === false ? '' : ' and HF_HUB_OFFLINE is set';
    throw new SpError(
      hfOffline() && opts.download !== false ? 'OFFLINE' : 'NOT_FOUND',
      `model ${label} not found in ${searchedPlaces(spec).join(', ')}${why}: run \`sp download ${label}\` where the hub is reachable, or pass --model DIR`,
    );
  }
  const { download: _download, ...dl } = opts;
  return downloadModel(nameOrDir, dl);
}

// ---------------------------------------------------------------------------------------------
// `sp models`

export interface CachedModel {
  /** Hub repo id (HF cache) or the folder name (sp folders). */
  repo: string;
  /** Refs pointing at this snapshot (`main`, `refs/pr/1`, ...), else the short commit; '' for sp folders. */
  revision: string;
  commit?: string;
  /** config.json model_type, when there is one. */
  modelType?: string;
  /** Bytes on disk (blobs counted once). */
  size: number;
  path: string;
  source: 'hf-cache' | 'sp';
}

function readRefs(folder: string): Map<string, string[]> {
  const byCommit = new Map<string, string[]>();
  const walk = (d: string, rel: string): void => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else {
        const c = fs.readFileSync(path.join(d, e.name), 'utf8').trim();
        byCommit.set(c, [...(byCommit.get(c) ?? []), r]);
      }
    }
  };
  walk(path.join(folder, 'refs'), '');
  return byCommit;
}

function dirSize(dir: string): number {
  const seen = new Set<string>();
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    try {
      const p = fs.realpathSync(path.join(dir, e.name));
      const st = fs.statSync(p);
      if (st.isFile() && !seen.has(p)) {
        seen.add(p);
        n += st.size;
      }
    } catch {
      /* dangling link */
    }
  }
  return n;
}

function modelTypeOf(dir: string): string | undefined {
  try {
    const t = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { model_type?: unknown }).model_type;
    return typeof t === 'string' ? t : undefined;
  } catch {
    return undefined;
  }
}

/** Models on disk: every snapshot with weights in the HF cache, then sp's own folders. */
export function listCachedModels(cacheDir = hfHubCache()): CachedModel[] {
  const out: CachedModel[] = [];
  let repos: string[] = [];
  try {
    repos = fs.readdirSync(cacheDir).filter((n) => n.startsWith('models--')).sort();
  } catch {
    /* no cache yet */
  }
  for (const name of repos) {
    const folder = path.join(cacheDir, name);
    const refs = readRefs(folder);
    let snaps: string[] = [];
    try {
      snaps = fs.readdirSync(path.join(folder, 'snapshots')).sort();
    } catch {
      continue;
    }
    for (const commit of snaps) {
      const snap = path.join(folder, 'snapshots', commit);
      if (!isModelDir(snap)) continue;
      out.push({
        repo: name.slice('models--'.length).split('--').join('/'),
        revision: (refs.get(commit) ?? [commit.slice(0, 8)]).join(','),
        commit,
        modelType: modelTypeOf(snap),
        size: dirSize(snap),
        path: snap,
        source: 'hf-cache',
      });
    }
  }
  for (const base of weightsDirs()) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(base).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      const d = path.join(base, n);
      if (isModelDir(d)) out.push({ repo: n, revision: '', modelType: modelTypeOf(d), size: dirSize(d), path: d, source: 'sp' });
    }
  }
  return out;
}
