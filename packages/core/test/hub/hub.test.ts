import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpError } from '../../src/errors.js';
import { PRESET_NAMES } from '../../src/config.js';
import {
  HUB_REPOS,
  MODEL_FILES,
  downloadModel,
  findInHfCache,
  findLocalModel,
  hfHubCache,
  listCachedModels,
  parseModelSpec,
  resolveModel,
  weightsDirs,
} from '../../src/weights/hub.js';
import { closedPort, commitOf, gitOid, mainOnly, sha256, startFakeHub, TOKEN, type FakeFile, type FakeHub, type FakeRepo } from './fakeHub.js';

const ENV_KEYS = ['SP_WEIGHTS_DIR', 'SP_HUB_URL', 'XDG_CACHE_HOME', 'HF_HOME', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_TOKEN_PATH'] as const;
let savedEnv: Record<string, string | undefined>;
let tmp: string;
let hub: FakeHub | undefined;

const CONFIG = Buffer.from(JSON.stringify({ model_type: 'gpt2', n_layer: 12, n_head: 12, n_embd: 768 }));
const TOKENIZER = Buffer.from(JSON.stringify({ version: '1.0', model: { type: 'BPE' } }));
const WEIGHTS = randomBytes(200_000);
const GPT2 = 'openai-community/gpt2';
const MAIN = commitOf(GPT2, 'main');

/** The HF cache under the test's XDG_CACHE_HOME (what huggingface_hub would use). */
const hfCache = (): string => path.join(tmp, 'cache', 'huggingface', 'hub');
const snapshot = (repo = GPT2, ref = 'main'): string => path.join(hfCache(), `models--${repo.replace('/', '--')}`, 'snapshots', commitOf(repo, ref));

function gpt2Files(over: Partial<Record<string, FakeFile>> = {}): Record<string, FakeFile> {
  const files: Record<string, FakeFile> = {
    'config.json': { body: CONFIG },
    'model.safetensors': { body: WEIGHTS },
    'tokenizer.json': { body: TOKENIZER },
  };
  for (const [k, v] of Object.entries(over)) {
    if (v) files[k] = v;
    else delete files[k];
  }
  return files;
}
const gpt2Hub = (over: Partial<Record<string, FakeFile>> = {}, extra: Record<string, FakeRepo> = {}): Promise<FakeHub> =>
  startFakeHub({ [GPT2]: mainOnly(gpt2Files(over)), ...extra });

/** Byte comparison (jest's toEqual walks Buffers element by element: seconds for 200 kB). */
async function expectBytes(file: string, want: Buffer): Promise<void> {
  const got = await readFile(file);
  expect(got.length).toBe(want.length);
  expect(got.equals(want)).toBe(true);
}

async function expectSpError(p: Promise<unknown>, code: string): Promise<SpError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SpError);
  expect((err as SpError).code).toBe(code);
  expect((err as SpError).message).not.toContain('\n');
  return err as SpError;
}

/** Every file and folder under tmp (relative paths), to compare before and after. */
const tree = (d = tmp, rel = ''): string[] =>
  fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => [path.join(rel, e.name), ...(e.isDirectory() ? tree(path.join(d, e.name), path.join(rel, e.name)) : [])]).sort() : [];

const failFetch = (async () => {
  throw new Error('network used');
}) as typeof fetch;

beforeEach(async () => {
  savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  tmp = await mkdtemp(path.join(tmpdir(), 'sp-hub-'));
  process.env.SP_WEIGHTS_DIR = path.join(tmp, 'weights');
  process.env.XDG_CACHE_HOME = path.join(tmp, 'cache');
});

afterEach(async () => {
  if (hub) await hub.close();
  hub = undefined;
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
  await rm(tmp, { recursive: true, force: true });
});

describe('constants and names', () => {
  test('every preset has a hub repo', () => {
    expect(Object.keys(HUB_REPOS).sort()).toEqual([...PRESET_NAMES].sort());
    expect(HUB_REPOS.gpt2).toBe('openai-community/gpt2');
    expect(HUB_REPOS['gpt2-xl']).toBe('openai-community/gpt2-xl');
    expect(HUB_REPOS.distilgpt2).toBe('distilbert/distilgpt2');
    expect(MODEL_FILES).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
  });

  test('parseModelSpec: presets, repo ids, revisions; junk refused', () => {
    expect(parseModelSpec('gpt2')).toEqual({ repo: GPT2, revision: undefined, preset: 'gpt2' });
    expect(parseModelSpec('openai-community/gpt2')).toEqual({ repo: GPT2, revision: undefined, preset: 'gpt2' });
    expect(parseModelSpec('gpt2@refs/pr/3')).toEqual({ repo: GPT2, revision: 'refs/pr/3', preset: 'gpt2' });
    expect(parseModelSpec('someone/My.Model_v2@v1.0')).toEqual({ repo: 'someone/My.Model_v2', revision: 'v1.0', preset: undefined });
    for (const bad of ['gpt5', 'a/b/c', '/abs/path', 'a/', 'a--b/c', 'a/b@', 'a/b@../x', 'a/b@x y', '../x']) expect(parseModelSpec(bad)).toBeUndefined();
  });

  test('HF cache location: HF_HUB_CACHE > HF_HOME/hub > XDG_CACHE_HOME/huggingface/hub', () => {
    expect(hfHubCache()).toBe(hfCache());
    process.env.HF_HOME = path.join(tmp, 'hfhome');
    expect(hfHubCache()).toBe(path.join(tmp, 'hfhome', 'hub'));
    process.env.HF_HUB_CACHE = path.join(tmp, 'direct');
    expect(hfHubCache()).toBe(path.join(tmp, 'direct'));
  });
});

describe('weightsDirs / findLocalModel (sp folders)', () => {
  test('search order: SP_WEIGHTS_DIR, then ..., then the XDG cache', () => {
    const dirs = weightsDirs();
    expect(dirs[0]).toBe(path.join(tmp, 'weights'));
    expect(dirs[dirs.length - 1]).toBe(path.join(tmp, 'cache', 'sp'));
    delete process.env.SP_WEIGHTS_DIR;
    expect(weightsDirs()).not.toContain(path.join(tmp, 'weights'));
    delete process.env.XDG_CACHE_HOME;
    const d = weightsDirs();
    expect(d[d.length - 1]).toMatch(/[/\\]\.cache[/\\]sp$/);
  });

  test('the repo weights/ dir is included only when it exists next to pnpm-workspace.yaml', () => {
    let dir = path.dirname(fileURLToPath(import.meta.url));
    while (!fs.existsSync(path.join(dir, 'pnpm-workspace.yaml')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
    const repoWeights = path.join(dir, 'weights');
    expect(weightsDirs().includes(repoWeights)).toBe(fs.existsSync(repoWeights));
  });

  test('finds the first dir holding model.safetensors', async () => {
    const cached = path.join(tmp, 'cache', 'sp', 'distilgpt2');
    await mkdir(cached, { recursive: true });
    await writeFile(path.join(cached, 'config.json'), '{}');
    expect(findLocalModel('distilgpt2')).toBeUndefined(); // no model.safetensors yet
    await writeFile(path.join(cached, 'model.safetensors'), 'x');
    expect(findLocalModel('distilgpt2')).toBe(cached);
    const first = path.join(tmp, 'weights', 'distilgpt2');
    await mkdir(first, { recursive: true });
    await writeFile(path.join(first, 'model.safetensors'), 'x');
    expect(findLocalModel('distilgpt2')).toBe(first);
  });
});

describe('download into the Hugging Face cache', () => {
  test('exact huggingface_hub layout: blobs by etag, relative snapshot links, refs/main; then found with the hub gone', async () => {
    hub = await gpt2Hub();
    const dir = await downloadModel('gpt2', { hubUrl: hub.url });
    expect(dir).toBe(snapshot());
    const folder = path.join(hfCache(), 'models--openai-community--gpt2');
    expect(tree(folder)).toEqual(
      [
        'blobs', `blobs/${sha256(WEIGHTS)}`, `blobs/${gitOid(CONFIG)}`, `blobs/${gitOid(TOKENIZER)}`,
        'refs', 'refs/main',
        'snapshots', `snapshots/${MAIN}`, `snapshots/${MAIN}/config.json`, `snapshots/${MAIN}/model.safetensors`, `snapshots/${MAIN}/tokenizer.json`,
      ].sort(),
    );
    expect(fs.readFileSync(path.join(folder, 'refs', 'main'), 'utf8')).toBe(MAIN); // no newline, as Python writes it
    expect(fs.readlinkSync(path.join(dir, 'model.safetensors'))).toBe(`../../blobs/${sha256(WEIGHTS)}`);
    expect(fs.readlinkSync(path.join(dir, 'config.json'))).toBe(`../../blobs/${gitOid(CONFIG)}`);
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
    await expectBytes(path.join(dir, 'config.json'), CONFIG);
    await expectBytes(path.join(dir, 'tokenizer.json'), TOKENIZER);
    // model info, file list, then the files by commit; the LFS file through the CDN redirect
    expect(hub.requests).toEqual([
      `GET /api/models/${GPT2}/revision/main`,
      `GET /api/models/${GPT2}/tree/${MAIN}`,
      `GET /${GPT2}/resolve/${MAIN}/config.json`,
      `GET /${GPT2}/resolve/${MAIN}/tokenizer.json`,
      `GET /${GPT2}/resolve/${MAIN}/model.safetensors`,
      `GET /cdn/${GPT2}/resolve/${MAIN}/model.safetensors`,
    ]);

    await hub.close();
    hub = undefined;
    const port = await closedPort();
    expect(await resolveModel('gpt2', { hubUrl: `http://127.0.0.1:${port}` })).toBe(dir);
    expect(await resolveModel(GPT2, { download: false })).toBe(dir);
    expect(await resolveModel(`${GPT2}@${MAIN}`, { download: false })).toBe(dir);
  });

  test('a second download reuses the blobs (no file requests)', async () => {
    hub = await gpt2Hub();
    const dir = await downloadModel('gpt2', { hubUrl: hub.url });
    hub.requests.length = 0;
    expect(await downloadModel(GPT2, { hubUrl: hub.url })).toBe(dir);
    expect(hub.requests.filter((r) => r.includes('/resolve/'))).toEqual([]);
  });

  test('any GPT-2 repo id at a revision; refs/<rev> is written; HF_ENDPOINT is the hub', async () => {
    const repo = 'someone/tiny-gpt2';
    hub = await startFakeHub({ [repo]: { revisions: { main: { 'config.json': { body: Buffer.from('{"model_type":"gpt2","v":0}') } }, v1: gpt2Files() } } });
    process.env.HF_ENDPOINT = hub.url;
    const dir = await downloadModel(`${repo}@v1`);
    expect(dir).toBe(snapshot(repo, 'v1'));
    expect(fs.readFileSync(path.join(hfCache(), 'models--someone--tiny-gpt2', 'refs', 'v1'), 'utf8')).toBe(commitOf(repo, 'v1'));
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
    await hub.close();
    hub = undefined;
    process.env.HF_HUB_OFFLINE = '1';
    expect(await resolveModel(`${repo}@v1`)).toBe(dir);
    await expectSpError(resolveModel(repo), 'OFFLINE'); // main is not cached
  });

  test('SP_HUB_URL still works as the hub; explicit cacheDir', async () => {
    hub = await gpt2Hub();
    process.env.SP_HUB_URL = hub.url + '/';
    const cacheDir = path.join(tmp, 'elsewhere');
    const dir = await downloadModel('gpt2', { cacheDir });
    expect(dir).toBe(path.join(cacheDir, 'models--openai-community--gpt2', 'snapshots', MAIN));
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
  });

  test('--dest: flat files in that directory (no links), nothing in the cache', async () => {
    hub = await gpt2Hub();
    const dest = path.join(tmp, 'somewhere', 'else');
    expect(await downloadModel('gpt2', { hubUrl: hub.url, dest })).toBe(dest);
    expect((await readdir(dest)).sort()).toEqual([...MODEL_FILES].sort());
    expect(fs.lstatSync(path.join(dest, 'model.safetensors')).isSymbolicLink()).toBe(false);
    await expectBytes(path.join(dest, 'model.safetensors'), WEIGHTS);
    expect(fs.existsSync(hfCache())).toBe(false);
  });

  test('tokenizer.json absent from the repo is skipped', async () => {
    hub = await gpt2Hub({ 'tokenizer.json': undefined });
    const dir = await downloadModel('gpt2', { hubUrl: hub.url });
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
  });

  test('onProgress is called with increasing counts up to the total; a bar on a non-TTY works', async () => {
    hub = await gpt2Hub();
    const calls: Array<[string, number, number]> = [];
    await downloadModel('gpt2', { hubUrl: hub.url, progress: true, onProgress: (f, d, t) => calls.push([f, d, t]) });
    const w = calls.filter(([f]) => f === 'model.safetensors');
    expect(w.length).toBeGreaterThan(1);
    for (let i = 1; i < w.length; i++) expect(w[i]![1]).toBeGreaterThan(w[i - 1]![1]);
    expect(w[w.length - 1]).toEqual(['model.safetensors', WEIGHTS.length, WEIGHTS.length]);
    expect(calls.some(([f]) => f === 'config.json')).toBe(true);
  });

  test('a custom fetchImpl is used', async () => {
    hub = await gpt2Hub();
    const seen: string[] = [];
    const spy = ((input: string | URL | Request, init?: RequestInit) => {
      seen.push(String(input));
      return fetch(input, init);
    }) as typeof fetch;
    await downloadModel('gpt2', { hubUrl: hub.url, fetchImpl: spy });
    expect(seen[0]).toBe(`${hub.url}/api/models/${GPT2}/revision/main?expand=pipeline_tag&expand=private&expand=gated&expand=downloads&expand=likes&expand=lastModified&expand=sha`);
    expect(seen.some((u) => u.endsWith('/resolve/' + MAIN + '/model.safetensors'))).toBe(true);
  });
});

describe('checks on what arrives', () => {
  test('sha256 mismatch on an LFS file -> BAD_FILE, nothing left', async () => {
    hub = await gpt2Hub({ 'model.safetensors': { body: WEIGHTS, behaviour: 'bad-checksum' } });
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'BAD_FILE');
    expect(err.message).toMatch(new RegExp(`^checksum mismatch for model\\.safetensors: expected sha256 ${sha256(WEIGHTS)}, got [0-9a-f]{64}$`));
    expect(tree()).toEqual([]);
  });

  test('git blob id mismatch on a small file -> BAD_FILE', async () => {
    hub = await gpt2Hub({ 'config.json': { body: CONFIG, behaviour: 'bad-checksum' } });
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'BAD_FILE');
    expect(err.message).toContain(`expected git blob id ${gitOid(CONFIG)}`);
  });

  test('truncated body (socket destroyed) -> OFFLINE naming the file, nothing that looks complete', async () => {
    hub = await gpt2Hub({ 'model.safetensors': { body: WEIGHTS, behaviour: 'truncate' } });
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'OFFLINE');
    expect(err.message).toContain('model.safetensors');
    expect(err.message).toContain('sp download gpt2');
    expect(tree()).toEqual([]);
    expect(findInHfCache(GPT2)).toBeUndefined();
    await expectSpError(resolveModel('gpt2', { download: false }), 'NOT_FOUND');
  });

  test('short body that ends cleanly -> BAD_FILE with both sizes', async () => {
    hub = await gpt2Hub({ 'model.safetensors': { body: WEIGHTS, behaviour: 'short-chunked' } });
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'BAD_FILE');
    expect(err.message).toContain(`expected ${WEIGHTS.length} bytes, got ${WEIGHTS.length >> 1}`);
    expect(tree()).toEqual([]);
  });

  test('an interrupted download leaves no .incomplete and a retry succeeds', async () => {
    hub = await gpt2Hub({ 'model.safetensors': { body: WEIGHTS, behaviour: 'truncate' } });
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'OFFLINE');
    await hub.close();
    hub = await gpt2Hub();
    const dir = await downloadModel('gpt2', { hubUrl: hub.url });
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
    expect(tree().filter((f) => f.endsWith('.incomplete'))).toEqual([]);
  });
});

describe('offline, unreachable, refused', () => {
  test('unreachable hub -> OFFLINE pointing at `sp download`, --model and HF_HUB_OFFLINE', async () => {
    const port = await closedPort();
    const hubUrl = `http://127.0.0.1:${port}`;
    const err = await expectSpError(downloadModel('gpt2', { hubUrl }), 'OFFLINE');
    expect(err.message).toBe(
      `cannot download gpt2 from ${hubUrl} (offline?): run \`sp download gpt2\` where the hub is reachable, or pass --model DIR (HF_HUB_OFFLINE=1 uses only cached models)`,
    );
    const err2 = await expectSpError(resolveModel('gpt2', { hubUrl }), 'OFFLINE');
    expect(err2.message).toContain('sp download gpt2');
    expect(tree()).toEqual([]);
  });

  test('unresolvable host -> OFFLINE', async () => {
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: 'http://no-such-host.invalid' }), 'OFFLINE');
    expect(err.message).toContain('sp download gpt2');
  });

  test('hub that never answers (API or file) -> OFFLINE after timeoutMs, nothing left', async () => {
    hub = await startFakeHub({ [GPT2]: mainOnly(gpt2Files(), { api: 'hang' }) });
    const t0 = Date.now();
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url, timeoutMs: 300 }), 'OFFLINE');
    expect(Date.now() - t0).toBeLessThan(10_000);
    await hub.close();
    hub = await gpt2Hub({ 'model.safetensors': { body: WEIGHTS, behaviour: 'hang' } });
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url, timeoutMs: 300 }), 'OFFLINE');
    expect(err.message).toContain('--model');
    expect(tree()).toEqual([]);
  });

  test('HF_HUB_OFFLINE=1: nothing cached -> one OFFLINE line naming HF_HUB_OFFLINE, `sp download`, --model; no request', async () => {
    hub = await gpt2Hub();
    process.env.HF_HUB_OFFLINE = '1';
    const err = await expectSpError(resolveModel('gpt2', { hubUrl: hub.url }), 'OFFLINE');
    expect(err.message).toMatch(/^model gpt2 not found in .*HF_HUB_OFFLINE is set: run `sp download gpt2` where the hub is reachable, or pass --model DIR$/);
    expect(err.message).toContain(path.join(hfCache(), 'models--openai-community--gpt2'));
    const err2 = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'OFFLINE');
    expect(err2.message).toContain('HF_HUB_OFFLINE');
    expect(hub.requests).toEqual([]);
  });

  test('HTTP errors carry the status', async () => {
    hub = await gpt2Hub({ 'model.safetensors': { body: WEIGHTS, behaviour: 404 } });
    let err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'NOT_FOUND');
    expect(err.message).toContain('404');
    await hub.close();
    hub = await gpt2Hub({ 'config.json': { body: CONFIG, behaviour: 500 } });
    err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'OFFLINE');
    expect(err.message).toContain('500');
    await hub.close();
    hub = await startFakeHub({ [GPT2]: mainOnly(gpt2Files(), { api: 500 }) });
    err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'OFFLINE');
    expect(err.message).toContain('500');
    await hub.close();
    hub = await gpt2Hub();
    err = await expectSpError(downloadModel('nobody/nothing', { hubUrl: hub.url }), 'NOT_FOUND');
    expect(err.message).toBe('cannot download nobody/nothing: the model info of nobody/nothing@main returned 404 (no such repo, revision or file)');
    err = await expectSpError(downloadModel('gpt2@no-such-branch', { hubUrl: hub.url }), 'NOT_FOUND');
    expect(err.message).toContain('404');
    expect(tree()).toEqual([]);
  });

  test('gated repo: 401 without HF_TOKEN, 403 with a token lacking access, download with HF_TOKEN (Bearer)', async () => {
    const repo = 'org/gated-gpt2';
    hub = await startFakeHub({ [repo]: mainOnly(gpt2Files(), { gated: true }) });
    let err = await expectSpError(downloadModel(repo, { hubUrl: hub.url }), 'NOT_FOUND');
    expect(err.message).toContain('401');
    expect(err.message).toContain('set HF_TOKEN');
    expect(err.message).toContain(`accepting the model's license at ${hub.url}/${repo}`);
    expect(tree()).toEqual([]);

    process.env.HF_TOKEN = 'hf_someone_else';
    err = await expectSpError(downloadModel(repo, { hubUrl: hub.url }), 'NOT_FOUND');
    expect(err.message).toContain('403');
    expect(err.message).toContain('HF_TOKEN has no access');

    process.env.HF_TOKEN = TOKEN;
    hub.auth.length = 0;
    const dir = await downloadModel(repo, { hubUrl: hub.url });
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
    expect(hub.auth.length).toBeGreaterThan(3);
    // the token goes to the hub, not to the CDN the hub redirects to (fetch drops it cross-origin; here same origin)
    expect(hub.auth.slice(0, 3)).toEqual([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
  });

  test('private repo: the API itself answers 401 -> one line saying to set HF_TOKEN; the saved login token is used', async () => {
    const repo = 'org/private-gpt2';
    hub = await startFakeHub({ [repo]: mainOnly(gpt2Files(), { private: true }) });
    const err = await expectSpError(downloadModel(repo, { hubUrl: hub.url }), 'NOT_FOUND');
    expect(err.message).toContain('401');
    expect(err.message).toContain('HF_TOKEN');
    // `huggingface-cli login` writes $HF_HOME/token
    process.env.HF_HOME = path.join(tmp, 'hfhome');
    await mkdir(process.env.HF_HOME, { recursive: true });
    await writeFile(path.join(process.env.HF_HOME, 'token'), TOKEN + '\n');
    const dir = await downloadModel(repo, { hubUrl: hub.url });
    expect(dir).toBe(path.join(tmp, 'hfhome', 'hub', 'models--org--private-gpt2', 'snapshots', commitOf(repo, 'main')));
  });

  test('a model_type other than gpt2 is refused after config.json, before any weights, leaving nothing', async () => {
    const repo = 'meta/llama-tiny';
    hub = await startFakeHub({ [repo]: mainOnly(gpt2Files({ 'config.json': { body: Buffer.from('{"model_type":"llama"}') } })) });
    const err = await expectSpError(resolveModel(repo, { hubUrl: hub.url }), 'UNSUPPORTED');
    expect(err.message).toBe('meta/llama-tiny is a "llama" model (config.json model_type); sp runs GPT-2 architecture models only (model_type "gpt2")');
    expect(hub.requests.some((r) => r.includes('model.safetensors'))).toBe(false);
    expect(tree()).toEqual([]);
  });

  test('pytorch_model.bin only -> UNSUPPORTED saying why and what to do; the .bin is never fetched', async () => {
    const repo = 'someone/old-gpt2';
    hub = await startFakeHub({ [repo]: mainOnly({ 'config.json': { body: CONFIG }, 'pytorch_model.bin': { body: WEIGHTS } }) });
    const err = await expectSpError(downloadModel(repo, { hubUrl: hub.url }), 'UNSUPPORTED');
    expect(err.message).toContain('has only pytorch_model.bin');
    expect(err.message).toContain('pickle files can execute code');
    expect(err.message).toContain('@refs/pr/N');
    expect(err.message).toContain('safe_serialization=True');
    expect(hub.requests.some((r) => r.includes('pytorch_model.bin'))).toBe(false);
    expect(tree()).toEqual([]);
  });

  test('non-preset, non-repo name -> BAD_INPUT listing the presets; unknown --model -> NOT_FOUND', async () => {
    const err = await expectSpError(downloadModel('llama'), 'BAD_INPUT');
    for (const p of PRESET_NAMES) expect(err.message).toContain(p);
    expect(err.message).toMatch(/^unknown model "llama"/);
    const err2 = await expectSpError(resolveModel('gpt5'), 'NOT_FOUND');
    expect(err2.message).toBe(`unknown model "gpt5": not a directory, not one of ${PRESET_NAMES.join(', ')}, and not a hub repo id owner/name[@revision] (use --model DIR)`);
  });
});

describe('a failed download leaves nothing it made', () => {
  test.each([
    ['404 on model.safetensors', { 'model.safetensors': { body: WEIGHTS, behaviour: 404 as const } }, 'NOT_FOUND'],
    ['model.safetensors missing from the repo', { 'model.safetensors': undefined }, 'NOT_FOUND'],
    ['500 on config.json', { 'config.json': { body: CONFIG, behaviour: 500 as const } }, 'OFFLINE'],
    ['transfer interrupted (socket destroyed)', { 'model.safetensors': { body: WEIGHTS, behaviour: 'truncate' as const } }, 'OFFLINE'],
    ['checksum mismatch', { 'model.safetensors': { body: WEIGHTS, behaviour: 'bad-checksum' as const } }, 'BAD_FILE'],
    ['500 on tokenizer.json', { 'tokenizer.json': { body: TOKENIZER, behaviour: 500 as const } }, 'OFFLINE'],
  ])('%s: no new folder, blob, link, ref or .incomplete (HF cache and --dest)', async (_label, over, code) => {
    hub = await gpt2Hub(over as Partial<Record<string, FakeFile>>);
    expect(tree()).toEqual([]);
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), code);
    expect(tree()).toEqual([]); // not even the cache folders the download had created
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url, dest: path.join(tmp, 'd', 'e') }), code);
    expect(tree()).toEqual([]);
    await expectSpError(resolveModel('gpt2', { download: false }), 'NOT_FOUND');
  });

  test('what was in the cache before stays: an earlier revision, other repos', async () => {
    hub = await startFakeHub({ [GPT2]: { revisions: { main: gpt2Files(), v2: gpt2Files({ 'model.safetensors': { body: randomBytes(1000), behaviour: 'truncate' } }) } } });
    const dir = await downloadModel('gpt2', { hubUrl: hub.url });
    const before = tree();
    await expectSpError(downloadModel('gpt2@v2', { hubUrl: hub.url }), 'OFFLINE');
    expect(tree()).toEqual(before);
    expect(await resolveModel('gpt2', { download: false })).toBe(dir);
  });

  test('an existing --dest keeps what it held (a stale .part goes); only the new files are removed', async () => {
    const dest = path.join(tmp, 'mine');
    await mkdir(dest);
    await writeFile(path.join(dest, 'notes.txt'), 'keep me');
    await writeFile(path.join(dest, 'config.json'), '{"old": true}'); // a different size: replaced, but it was there
    await writeFile(path.join(dest, 'model.safetensors.part'), 'left by a killed run');
    hub = await gpt2Hub({ 'model.safetensors': { body: WEIGHTS, behaviour: 'truncate' } });
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url, dest }), 'OFFLINE');
    expect(tree()).toEqual(['mine', 'mine/config.json', 'mine/notes.txt']);
    await expectBytes(path.join(dest, 'config.json'), CONFIG);
    expect(fs.readFileSync(path.join(dest, 'notes.txt'), 'utf8')).toBe('keep me');
  });
});

describe('resolveModel lookup order', () => {
  /** A cache entry in the exact layout huggingface_hub writes, made by hand. */
  async function pythonCache(repo: string, files: Record<string, Buffer>, ref = 'main', commit = commitOf(repo, ref)): Promise<string> {
    const folder = path.join(hfCache(), `models--${repo.replace('/', '--')}`);
    const snap = path.join(folder, 'snapshots', commit);
    await mkdir(path.join(folder, 'blobs'), { recursive: true });
    await mkdir(snap, { recursive: true });
    await mkdir(path.join(folder, 'refs'), { recursive: true });
    for (const [name, body] of Object.entries(files)) {
      const etag = name.endsWith('.safetensors') ? sha256(body) : gitOid(body);
      await writeFile(path.join(folder, 'blobs', etag), body);
      fs.symlinkSync(`../../blobs/${etag}`, path.join(snap, name));
    }
    await writeFile(path.join(folder, 'refs', ref), commit);
    await mkdir(path.join(folder, '.no_exist', commit), { recursive: true }); // Python's marker of files the repo lacks
    await writeFile(path.join(folder, '.no_exist', commit, 'tokenizer.json'), '');
    return snap;
  }

  test('an existing directory passes through, made absolute', async () => {
    const d = path.join(tmp, 'my-model');
    await mkdir(d);
    expect(await resolveModel(d)).toBe(d);
    expect(await resolveModel(path.relative(process.cwd(), d))).toBe(d);
  });

  test('a directory whose config.json is not gpt2 is refused', async () => {
    const d = path.join(tmp, 'bert');
    await mkdir(d);
    await writeFile(path.join(d, 'config.json'), '{"model_type":"bert"}');
    const err = await expectSpError(resolveModel(d), 'UNSUPPORTED');
    expect(err.message).toContain('"bert"');
  });

  test('a Python-made HF cache is found with HF_HUB_OFFLINE=1 and no server (preset, repo id, @commit)', async () => {
    const snap = await pythonCache(GPT2, { 'config.json': CONFIG, 'model.safetensors': WEIGHTS });
    process.env.HF_HUB_OFFLINE = '1';
    for (const name of ['gpt2', GPT2, `${GPT2}@main`, `${GPT2}@${MAIN}`]) expect(await resolveModel(name, { fetchImpl: failFetch })).toBe(snap);
    await expectSpError(resolveModel(`${GPT2}@v9`), 'OFFLINE');
  });

  test('HF_HUB_CACHE and HF_HOME move the cache that is searched', async () => {
    const snap = await pythonCache(GPT2, { 'config.json': CONFIG, 'model.safetensors': WEIGHTS });
    process.env.HF_HUB_OFFLINE = 'true';
    fs.renameSync(hfCache(), path.join(tmp, 'moved'));
    await expectSpError(resolveModel('gpt2'), 'OFFLINE');
    process.env.HF_HUB_CACHE = path.join(tmp, 'moved');
    expect(await resolveModel('gpt2')).toBe(snap.replace(hfCache(), path.join(tmp, 'moved')));
    delete process.env.HF_HUB_CACHE;
    await mkdir(path.join(tmp, 'home'));
    fs.renameSync(path.join(tmp, 'moved'), path.join(tmp, 'home', 'hub'));
    process.env.HF_HOME = path.join(tmp, 'home');
    expect(await resolveModel('gpt2')).toBe(snap.replace(hfCache(), path.join(tmp, 'home', 'hub')));
  });

  test('a snapshot with a dangling link (blob missing) or no weights is not a model', async () => {
    const snap = await pythonCache(GPT2, { 'config.json': CONFIG, 'model.safetensors': WEIGHTS });
    fs.rmSync(path.join(hfCache(), 'models--openai-community--gpt2', 'blobs', sha256(WEIGHTS)));
    expect(findInHfCache(GPT2)).toBeUndefined();
    fs.rmSync(path.join(snap, 'model.safetensors'));
    expect(findInHfCache(GPT2)).toBeUndefined();
  });

  test('a cached non-gpt2 repo is refused offline, naming the type', async () => {
    await pythonCache('google/bert-tiny', { 'config.json': Buffer.from('{"model_type":"bert"}'), 'model.safetensors': WEIGHTS });
    process.env.HF_HUB_OFFLINE = '1';
    const err = await expectSpError(resolveModel('google/bert-tiny'), 'UNSUPPORTED');
    expect(err.message).toMatch(/^google\/bert-tiny is a "bert" model/);
  });

  test('order: SP_WEIGHTS_DIR > HF cache > ~/.cache/sp', async () => {
    const sp = path.join(tmp, 'cache', 'sp', 'gpt2');
    await mkdir(sp, { recursive: true });
    await writeFile(path.join(sp, 'model.safetensors'), 'x');
    expect(await resolveModel('gpt2', { fetchImpl: failFetch })).toBe(sp);
    const snap = await pythonCache(GPT2, { 'config.json': CONFIG, 'model.safetensors': WEIGHTS });
    expect(await resolveModel('gpt2', { fetchImpl: failFetch })).toBe(snap);
    const mine = path.join(tmp, 'weights', 'gpt2');
    await mkdir(mine, { recursive: true });
    await writeFile(path.join(mine, 'model.safetensors'), 'x'); // config.json optional
    expect(await resolveModel('gpt2', { fetchImpl: failFetch })).toBe(mine);
    expect(await resolveModel(GPT2, { fetchImpl: failFetch })).toBe(mine);
    // a revision asks for the HF cache only: the sp folders have no revisions
    expect(await resolveModel(`gpt2@main`, { fetchImpl: failFetch })).toBe(snap);
  });

  test('download: false with nothing local -> NOT_FOUND listing the places, no request made', async () => {
    let called = false;
    const spy = (async () => {
      called = true;
      throw new Error('x');
    }) as typeof fetch;
    if (findLocalModel('gpt2-xl')) return; // present in the repo weights/ dir on this machine
    const err = await expectSpError(resolveModel('gpt2-xl', { download: false, fetchImpl: spy }), 'NOT_FOUND');
    expect(err.message).toContain('sp download gpt2-xl');
    expect(err.message).toContain(path.join(tmp, 'weights', 'gpt2-xl'));
    expect(err.message).toContain(path.join(hfCache(), 'models--openai-community--gpt2-xl'));
    expect(called).toBe(false);
  });

  test('listCachedModels: HF snapshots with refs and sizes, then sp folders', async () => {
    const snap = await pythonCache(GPT2, { 'config.json': CONFIG, 'model.safetensors': WEIGHTS });
    fs.symlinkSync(`../../blobs/${sha256(WEIGHTS)}`, path.join(snap, 'same-blob-again.safetensors')); // counted once
    await pythonCache('someone/no-weights', { 'config.json': CONFIG });
    const mine = path.join(tmp, 'weights', 'distilgpt2');
    await mkdir(mine, { recursive: true });
    await writeFile(path.join(mine, 'model.safetensors'), 'xyz');
    const list = listCachedModels().filter((m) => m.path.startsWith(tmp));
    expect(list).toEqual([
      { repo: GPT2, revision: 'main', commit: MAIN, modelType: 'gpt2', size: CONFIG.length + WEIGHTS.length, path: snap, source: 'hf-cache' },
      { repo: 'distilgpt2', revision: '', modelType: undefined, size: 3, path: mine, source: 'sp' },
    ]);
  });
});
