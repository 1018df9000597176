import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpError } from '../../src/errors.js';
import { PRESET_NAMES } from '../../src/model/config.js';
import {
  HUB_REPOS,
  MODEL_FILES,
  downloadModel,
  findLocalModel,
  resolveModel,
  weightsDirs,
} from '../../src/weights/hub.js';
import { closedPort, startFakeHub, type FakeFile, type FakeHub } from './fakeHub.js';

const ENV_KEYS = ['SP_WEIGHTS_DIR', 'SP_HUB_URL', 'XDG_CACHE_HOME'] as const;
let savedEnv: Record<string, string | undefined>;
let tmp: string;
let hub: FakeHub | undefined;

const CONFIG = Buffer.from(JSON.stringify({ model_type: 'gpt2', n_layer: 12, n_head: 12, n_embd: 768 }));
const TOKENIZER = Buffer.from(JSON.stringify({ version: '1.0', model: { type: 'BPE' } }));
const WEIGHTS = randomBytes(200_000);

const P = (file: string, repo = 'openai-community/gpt2', rev = 'main'): string => `${repo}/resolve/${rev}/${file}`;

function gpt2Repo(over: Partial<Record<string, FakeFile>> = {}): Record<string, FakeFile> {
  const files: Record<string, FakeFile> = {
    [P('config.json')]: { body: CONFIG },
    [P('model.safetensors')]: { body: WEIGHTS },
    [P('tokenizer.json')]: { body: TOKENIZER },
  };
  for (const [k, v] of Object.entries(over)) {
    if (v) files[k] = v;
    else delete files[k];
  }
  return files;
}

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

beforeEach(async () => {
  savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  tmp = await mkdtemp(path.join(tmpdir(), 'sp-hub-'));
  process.env.SP_WEIGHTS_DIR = path.join(tmp, 'weights');
  process.env.XDG_CACHE_HOME = path.join(tmp, 'cache');
  delete process.env.SP_HUB_URL;
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

describe('constants', () => {
  test('every preset has a hub repo', () => {
    expect(Object.keys(HUB_REPOS).sort()).toEqual([...PRESET_NAMES].sort());
    expect(HUB_REPOS.gpt2).toBe('openai-community/gpt2');
    expect(HUB_REPOS['gpt2-xl']).toBe('openai-community/gpt2-xl');
    expect(HUB_REPOS.distilgpt2).toBe('distilbert/distilgpt2');
    expect(MODEL_FILES).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
  });
});

describe('weightsDirs / findLocalModel', () => {
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
    // This test runs from the monorepo: find its root the same way.
    let dir = path.dirname(fileURLToPath(import.meta.url));
    while (!fs.existsSync(path.join(dir, 'pnpm-workspace.yaml')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
    const repoWeights = path.join(dir, 'weights');
    expect(weightsDirs().includes(repoWeights)).toBe(fs.existsSync(repoWeights));
  });

  test('finds the first dir holding model.safetensors and config.json', async () => {
    const cached = path.join(tmp, 'cache', 'sp', 'distilgpt2');
    await mkdir(cached, { recursive: true });
    await writeFile(path.join(cached, 'config.json'), '{}');
    expect(findLocalModel('distilgpt2')).toBeUndefined(); // no model.safetensors yet
    await writeFile(path.join(cached, 'model.safetensors'), 'x');
    expect(findLocalModel('distilgpt2')).toBe(cached);
    const first = path.join(tmp, 'weights', 'distilgpt2');
    await mkdir(first, { recursive: true });
    await writeFile(path.join(first, 'config.json'), '{}');
    await writeFile(path.join(first, 'model.safetensors'), 'x');
    expect(findLocalModel('distilgpt2')).toBe(first);
  });
});

describe('downloadModel', () => {
  test('downloads byte-identical files; resolveModel then finds them with the hub gone', async () => {
    hub = await startFakeHub(gpt2Repo());
    const dir = await downloadModel('gpt2', { hubUrl: hub.url });
    expect(dir).toBe(path.join(tmp, 'weights', 'gpt2'));
    await expectBytes(path.join(dir, 'config.json'), CONFIG);
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
    await expectBytes(path.join(dir, 'tokenizer.json'), TOKENIZER);
    expect((await readdir(dir)).sort()).toEqual([...MODEL_FILES].sort()); // no .part left
    expect(hub.requests).toEqual(MODEL_FILES.map((f) => '/' + P(f)));

    await hub.close();
    hub = undefined;
    const port = await closedPort();
    expect(await resolveModel('gpt2', { hubUrl: `http://127.0.0.1:${port}` })).toBe(dir);
    expect(await resolveModel('gpt2', { download: false })).toBe(dir);
  });

  test('SP_HUB_URL is the default hub; without SP_WEIGHTS_DIR files go to the cache', async () => {
    hub = await startFakeHub(gpt2Repo());
    process.env.SP_HUB_URL = hub.url + '/';
    delete process.env.SP_WEIGHTS_DIR;
    const dir = await downloadModel('gpt2');
    expect(dir).toBe(path.join(tmp, 'cache', 'sp', 'gpt2'));
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
  });

  test('explicit dest, revision and other repos', async () => {
    const repo = 'distilbert/distilgpt2';
    hub = await startFakeHub({
      [P('config.json', repo, 'v1')]: { body: CONFIG },
      [P('model.safetensors', repo, 'v1')]: { body: WEIGHTS },
    });
    const dest = path.join(tmp, 'somewhere', 'else');
    expect(await downloadModel('distilgpt2', { hubUrl: hub.url, dest, revision: 'v1' })).toBe(dest);
    await expectBytes(path.join(dest, 'model.safetensors'), WEIGHTS);
  });

  test('follows the hub redirect to its CDN and checks x-linked-etag / x-linked-size from the 302', async () => {
    hub = await startFakeHub(gpt2Repo({ [P('model.safetensors')]: { body: WEIGHTS, behaviour: 'redirect' } }));
    const dir = await downloadModel('gpt2', { hubUrl: hub.url });
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
    expect(hub.requests).toContain('/cdn/' + P('model.safetensors'));
    await hub.close();

    // the sha256 announced on the 302 is what gets checked
    hub = await startFakeHub(gpt2Repo({ [P('model.safetensors')]: { body: WEIGHTS, behaviour: 'redirect-bad-checksum' } }));
    await rm(dir, { recursive: true });
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'BAD_FILE');
    expect(fs.existsSync(dir)).toBe(false); // nothing of the failed download stays, config.json included
  });

  test('404 tokenizer.json is skipped', async () => {
    hub = await startFakeHub(gpt2Repo({ [P('tokenizer.json')]: undefined }));
    const dir = await downloadModel('gpt2', { hubUrl: hub.url });
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(findLocalModel('gpt2')).toBe(dir);
  });

  test('onProgress is called with increasing counts up to the total', async () => {
    hub = await startFakeHub(gpt2Repo());
    const calls: Array<[string, number, number]> = [];
    await downloadModel('gpt2', { hubUrl: hub.url, onProgress: (f, d, t) => calls.push([f, d, t]) });
    const w = calls.filter(([f]) => f === 'model.safetensors');
    expect(w.length).toBeGreaterThan(1);
    for (let i = 1; i < w.length; i++) expect(w[i]![1]).toBeGreaterThan(w[i - 1]![1]);
    expect(w[w.length - 1]).toEqual(['model.safetensors', WEIGHTS.length, WEIGHTS.length]);
    expect(calls.some(([f]) => f === 'config.json')).toBe(true);
  });

  test('progress: true (bar on a non-TTY stderr) does not break the download', async () => {
    hub = await startFakeHub(gpt2Repo());
    const dir = await downloadModel('gpt2', { hubUrl: hub.url, progress: true });
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
  });

  test('files already present with the right size are not rewritten', async () => {
    hub = await startFakeHub(gpt2Repo());
    const dir = path.join(tmp, 'weights', 'gpt2');
    await mkdir(dir, { recursive: true });
    const sameSize = Buffer.alloc(WEIGHTS.length, 7);
    await writeFile(path.join(dir, 'model.safetensors'), sameSize);
    await writeFile(path.join(dir, 'config.json'), 'wrong size');
    await downloadModel('gpt2', { hubUrl: hub.url });
    await expectBytes(path.join(dir, 'model.safetensors'), sameSize); // kept
    await expectBytes(path.join(dir, 'config.json'), CONFIG); // replaced
  });

  test('checksum mismatch -> BAD_FILE and no file left', async () => {
    hub = await startFakeHub(gpt2Repo({ [P('model.safetensors')]: { body: WEIGHTS, behaviour: 'bad-checksum' } }));
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'BAD_FILE');
    expect(err.message).toMatch(/^checksum mismatch for model\.safetensors: expected/);
    const dir = path.join(tmp, 'weights', 'gpt2');
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'model.safetensors.part'))).toBe(false);
    expect(findLocalModel('gpt2')).toBeUndefined();
  });

  test('truncated body (socket destroyed before content-length) -> error and no file left', async () => {
    hub = await startFakeHub(gpt2Repo({ [P('model.safetensors')]: { body: WEIGHTS, behaviour: 'truncate' } }));
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'OFFLINE');
    expect(err.message).toContain('model.safetensors');
    const dir = path.join(tmp, 'weights', 'gpt2');
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'model.safetensors.part'))).toBe(false);
    await expectSpError(resolveModel('gpt2', { download: false }), 'NOT_FOUND');
  });

  test('short body that ends cleanly (x-linked-size larger) -> BAD_FILE and no file left', async () => {
    hub = await startFakeHub(gpt2Repo({ [P('model.safetensors')]: { body: WEIGHTS, behaviour: 'short-chunked', lfs: false } }));
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'BAD_FILE');
    expect(err.message).toContain(`expected ${WEIGHTS.length} bytes, got ${WEIGHTS.length >> 1}`);
    // config.json had arrived: it goes too, with the folders the download made.
    expect(fs.existsSync(path.join(tmp, 'weights'))).toBe(false);
  });

  test('unreachable hub -> OFFLINE pointing at `sp download` and --model', async () => {
    const port = await closedPort();
    const hubUrl = `http://127.0.0.1:${port}`;
    const err = await expectSpError(downloadModel('gpt2', { hubUrl }), 'OFFLINE');
    expect(err.message).toBe(
      `cannot download gpt2 from ${hubUrl} (offline?): run \`sp download gpt2\` where the hub is reachable, or pass --model DIR / set SP_WEIGHTS_DIR`,
    );
    // resolveModel goes the same way when nothing is local
    const err2 = await expectSpError(resolveModel('gpt2', { hubUrl }), 'OFFLINE');
    expect(err2.message).toContain('sp download gpt2');
    expect(err2.message).toContain('--model');
  });

  test('unresolvable host -> OFFLINE', async () => {
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: 'http://no-such-host.invalid' }), 'OFFLINE');
    expect(err.message).toContain('sp download gpt2');
  });

  test('hub that never answers -> OFFLINE after timeoutMs', async () => {
    hub = await startFakeHub(gpt2Repo({ [P('config.json')]: { body: CONFIG, behaviour: 'hang' } }));
    const t0 = Date.now();
    const err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url, timeoutMs: 300 }), 'OFFLINE');
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(err.message).toContain('--model');
  });

  test('HTTP errors carry the status', async () => {
    hub = await startFakeHub(gpt2Repo({ [P('model.safetensors')]: { body: WEIGHTS, behaviour: 401 } }));
    let err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'NOT_FOUND');
    expect(err.message).toContain('401');
    await hub.close();

    hub = await startFakeHub(gpt2Repo({ [P('model.safetensors')]: undefined }));
    err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'NOT_FOUND');
    expect(err.message).toContain('404');
    await hub.close();

    hub = await startFakeHub(gpt2Repo({ [P('config.json')]: { body: CONFIG, behaviour: 500 } }));
    err = await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'OFFLINE');
    expect(err.message).toContain('500');
  });

  test('non-preset name -> BAD_INPUT listing the presets', async () => {
    const err = await expectSpError(downloadModel('llama'), 'BAD_INPUT');
    for (const p of PRESET_NAMES) expect(err.message).toContain(p);
  });

  test('a custom fetchImpl is used', async () => {
    const seen: string[] = [];
    const fake = (async (input: string | URL | Request) => {
      const url = String(input);
      seen.push(url);
      const file = url.split('/').pop()!;
      const body = file === 'config.json' ? CONFIG : file === 'model.safetensors' ? WEIGHTS : undefined;
      if (!body) return new Response('nope', { status: 404 });
      return new Response(body, { status: 200, headers: { 'content-length': String(body.length) } });
    }) as typeof fetch;
    const dir = await downloadModel('gpt2', { hubUrl: 'https://hub.example', fetchImpl: fake });
    expect(seen[0]).toBe('https://hub.example/openai-community/gpt2/resolve/main/config.json');
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
  });
});

describe('a failed download leaves nothing it made', () => {
  /** Every file and folder under tmp (relative paths), to compare before and after. */
  const tree = (d = tmp, rel = ''): string[] =>
    fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => [path.join(rel, e.name), ...(e.isDirectory() ? tree(path.join(d, e.name), path.join(rel, e.name)) : [])]).sort() : [];

  test.each([
    ['404 on model.safetensors', { [P('model.safetensors')]: undefined }, 'NOT_FOUND'],
    ['500 on config.json', { [P('config.json')]: { body: CONFIG, behaviour: 500 as const } }, 'OFFLINE'],
    ['transfer interrupted (socket destroyed)', { [P('model.safetensors')]: { body: WEIGHTS, behaviour: 'truncate' as const } }, 'OFFLINE'],
    ['checksum mismatch', { [P('model.safetensors')]: { body: WEIGHTS, behaviour: 'bad-checksum' as const } }, 'BAD_FILE'],
    ['500 on the last file (tokenizer.json)', { [P('tokenizer.json')]: { body: TOKENIZER, behaviour: 500 as const } }, 'OFFLINE'],
  ])('%s: no new folder (in $SP_WEIGHTS_DIR or the cache), no .part file', async (_label, over, code) => {
    hub = await startFakeHub(gpt2Repo(over as Partial<Record<string, FakeFile>>));
    expect(tree()).toEqual([]);
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), code);
    expect(tree()).toEqual([]); // not even $SP_WEIGHTS_DIR itself, which the download had created
    delete process.env.SP_WEIGHTS_DIR; // default dest: <cache>/sp/gpt2
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), code);
    expect(tree()).toEqual([]);
    await expectSpError(resolveModel('gpt2', { download: false }), 'NOT_FOUND');
  });

  test('connection refused / hub that never answers: nothing left', async () => {
    const port = await closedPort();
    await expectSpError(downloadModel('gpt2', { hubUrl: `http://127.0.0.1:${port}` }), 'OFFLINE');
    expect(tree()).toEqual([]);
    hub = await startFakeHub(gpt2Repo({ [P('model.safetensors')]: { body: WEIGHTS, behaviour: 'hang' } }));
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url, timeoutMs: 200 }), 'OFFLINE');
    expect(tree()).toEqual([]);
  });

  test('an existing --dest keeps what it held (a stale .part goes); only the new files are removed', async () => {
    const dest = path.join(tmp, 'mine');
    await mkdir(dest);
    await writeFile(path.join(dest, 'notes.txt'), 'keep me');
    await writeFile(path.join(dest, 'config.json'), '{"old": true}'); // a different size: replaced, but it was there
    await writeFile(path.join(dest, 'model.safetensors.part'), 'left by a killed run');
    hub = await startFakeHub(gpt2Repo({ [P('tokenizer.json')]: { body: TOKENIZER, behaviour: 'truncate' } }));
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url, dest }), 'OFFLINE');
    expect(tree()).toEqual(['mine', 'mine/config.json', 'mine/notes.txt']);
    await expectBytes(path.join(dest, 'config.json'), CONFIG);
    expect(fs.readFileSync(path.join(dest, 'notes.txt'), 'utf8')).toBe('keep me');
  });

  test('a download that succeeds after a failed one works (nothing stale in the way)', async () => {
    hub = await startFakeHub(gpt2Repo({ [P('model.safetensors')]: { body: WEIGHTS, behaviour: 'truncate' } }));
    await expectSpError(downloadModel('gpt2', { hubUrl: hub.url }), 'OFFLINE');
    await hub.close();
    hub = await startFakeHub(gpt2Repo());
    const dir = await downloadModel('gpt2', { hubUrl: hub.url });
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    await expectBytes(path.join(dir, 'model.safetensors'), WEIGHTS);
  });
});

describe('resolveModel', () => {
  test('an existing directory passes through, made absolute', async () => {
    const d = path.join(tmp, 'my-model');
    await mkdir(d);
    expect(await resolveModel(d)).toBe(d);
    const rel = path.relative(process.cwd(), d);
    expect(await resolveModel(rel)).toBe(d);
  });

  test('unknown name -> NOT_FOUND with the presets and --model', async () => {
    const err = await expectSpError(resolveModel('gpt5'), 'NOT_FOUND');
    expect(err.message).toBe(
      `unknown model "gpt5": not a directory and not one of ${PRESET_NAMES.join(', ')} (use --model DIR)`,
    );
  });

  test('preset found locally needs no network', async () => {
    const d = path.join(tmp, 'weights', 'gpt2-medium');
    await mkdir(d, { recursive: true });
    await writeFile(path.join(d, 'config.json'), '{}');
    await writeFile(path.join(d, 'model.safetensors'), 'x');
    const fail = (async () => {
      throw new Error('network used');
    }) as typeof fetch;
    expect(await resolveModel('gpt2-medium', { fetchImpl: fail })).toBe(d);
  });

  test('$SP_WEIGHTS_DIR/<name> with model.safetensors but no config.json is used (config.json is optional)', async () => {
    const d = path.join(tmp, 'weights', 'gpt2');
    await mkdir(d, { recursive: true });
    await writeFile(path.join(d, 'model.safetensors'), 'x');
    const fail = (async () => {
      throw new Error('network used');
    }) as typeof fetch;
    expect(findLocalModel('gpt2')).toBe(d);
    expect(await resolveModel('gpt2', { fetchImpl: fail })).toBe(d);
    // A config.json alone is not a model.
    await rm(path.join(d, 'model.safetensors'));
    await writeFile(path.join(d, 'config.json'), '{}');
    expect(findLocalModel('gpt2')).toBeUndefined();
  });

  test('download: false with nothing local -> NOT_FOUND, no request made', async () => {
    let called = false;
    const spy = (async () => {
      called = true;
      throw new Error('x');
    }) as typeof fetch;
    // a model unlikely to be in a developer's repo weights/ or cache (both overridden above anyway)
    if (findLocalModel('gpt2-xl')) return; // present in the repo weights/ dir on this machine
    const err = await expectSpError(resolveModel('gpt2-xl', { download: false, fetchImpl: spy }), 'NOT_FOUND');
    expect(err.message).toContain('sp download gpt2-xl');
    expect(called).toBe(false);
  });
});
