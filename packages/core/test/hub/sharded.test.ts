/**
 * Sharded checkpoints (model-0000x-of-0000y.safetensors + model.safetensors.index.json, as large
 * fine-tunes ship): Checkpoint reads each tensor from the shard the index names, bit-for-bit what
 * the unsharded file holds, and the model gives identical logits; downloaded from the fake hub into
 * the HF cache (an interrupted shard leaves nothing) and then loaded by repo id offline.
 */
import fs from 'node:fs';
import path from 'node:path';
import { gpt2 } from '@sp/core';
import { SpError } from '../../src/errors.js';
import { Checkpoint, SHARD_INDEX } from '../../src/weights/checkpoint.js';
import { downloadModel, resolveModel } from '../../src/weights/hub.js';
import { encodeSafetensors, type TensorToWrite } from '../../src/weights/safetensors.js';
import { tmpDir } from '../helpers/fixtures.js';
import { randomIds, writeRandomGpt2 } from '../helpers/random-gpt2.js';
import { commitOf, mainOnly, startFakeHub, type FakeFile } from './fakeHub.js';

const ENV_KEYS = ['HF_HUB_CACHE', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_TOKEN', 'SP_WEIGHTS_DIR'] as const;
let saved: Record<string, string | undefined>;
let tmp: string;
beforeEach(() => {
  saved = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  tmp = tmpDir('sp-shards-');
  process.env.HF_HUB_CACHE = path.join(tmp, 'hf');
  process.env.SP_WEIGHTS_DIR = path.join(tmp, 'none');
});
afterEach(() => {
  for (const k of ENV_KEYS) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

const spec = { nLayer: 2, nHead: 2, dModel: 16, nCtx: 16, prefix: true };

/** The files of a 3-shard copy of `dir`: embeddings, block 0, the rest (+ the index). */
function shardFiles(dir: string): Record<string, Buffer> {
  const ckpt = Checkpoint.open(dir);
  const src = ckpt.file;
  const groups: TensorToWrite[][] = [[], [], []];
  for (const [name, t] of src.tensors) {
    const g = /wte|wpe/.test(name) ? 0 : /\.h\.0\./.test(name) ? 1 : 2;
    groups[g]!.push({ name, shape: t.shape, dtype: t.dtype, data: src.read(name) });
  }
  ckpt.close();
  const out: Record<string, Buffer> = {};
  const weightMap: Record<string, string> = {};
  let total = 0;
  groups.forEach((g, i) => {
    const file = `model-0000${i + 1}-of-00003.safetensors`;
    out[file] = encodeSafetensors(g, { format: 'pt' });
    for (const t of g) weightMap[t.name] = file;
    total += out[file]!.length;
  });
  out[SHARD_INDEX] = Buffer.from(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  out['config.json'] = fs.readFileSync(path.join(dir, 'config.json'));
  return out;
}

function writeDir(files: Record<string, Buffer>, dir = tmpDir('sp-sharded-')): string {
  for (const [f, b] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), b);
  return dir;
}

async function logits(dir: string, ids: number[]): Promise<Float32Array> {
  const model = await gpt2(dir, { backend: 'wasm' });
  try {
    const t = model.forward(ids);
    const out = t.dataSync() as Float32Array;
    t.dispose();
    return out;
  } finally {
    model.dispose();
  }
}

function expectSpError(f: () => unknown, code: string, pattern: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SpError);
  expect((err as SpError).code).toBe(code);
  expect((err as SpError).message).toMatch(pattern);
}

test('a sharded checkpoint reads every tensor from its shard, bit-for-bit the unsharded file; same logits', async () => {
  const single = writeRandomGpt2(spec).dir;
  const sharded = writeDir(shardFiles(single));
  const a = Checkpoint.open(single);
  const b = Checkpoint.open(sharded);
  try {
    expect(b.files.map((f) => path.basename(f.path))).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    expect(b.config).toEqual(a.config);
    expect(b.parameterBytes).toBe(a.parameterBytes);
    for (const name of ['wte.weight', 'wpe.weight', 'h.0.attn.c_attn.weight', 'h.1.mlp.c_proj.weight', 'ln_f.bias']) {
      expect(Buffer.from(b.read(name).buffer).equals(Buffer.from(a.read(name).buffer))).toBe(true);
      const bytes = new Uint8Array(a.info(name).end - a.info(name).begin - 8);
      const bytesB = new Uint8Array(bytes.length);
      a.readInto(name, bytes, 8);
      b.readInto(name, bytesB, 8);
      expect(Buffer.from(bytesB).equals(Buffer.from(bytes))).toBe(true);
    }
    expect(path.basename(b.fileOf('h.1.ln_2.weight').path)).toBe('model-00003-of-00003.safetensors');
    expect(Array.from(b.ffKey(1, 5))).toEqual(Array.from(a.ffKey(1, 5)));
    expect(Array.from(b.ffValue(0, 7))).toEqual(Array.from(a.ffValue(0, 7)));
    expect(Array.from(b.tokenEmbedding(50256))).toEqual(Array.from(a.tokenEmbedding(50256)));
  } finally {
    a.close();
    b.close();
  }
  const ids = randomIds(10, 7);
  const la = await logits(single, ids);
  const lb = await logits(sharded, ids);
  expect(lb.length).toBe(la.length);
  expect(Buffer.from(lb.buffer).equals(Buffer.from(la.buffer))).toBe(true);
});

test('broken shard sets are refused in one line', () => {
  const files = shardFiles(writeRandomGpt2(spec).dir);
  const index = JSON.parse(files[SHARD_INDEX]!.toString());
  // the index names a shard that lacks the tensor
  const wrong = { ...index, weight_map: { ...index.weight_map, 'transformer.wte.weight': 'model-00002-of-00003.safetensors' } };
  expectSpError(() => Checkpoint.open(writeDir({ ...files, [SHARD_INDEX]: Buffer.from(JSON.stringify(wrong)) })), 'BAD_FILE', /puts tensor "transformer\.wte\.weight" in model-00002-of-00003\.safetensors, which does not hold it/);
  // a path outside the folder
  const escape = { weight_map: { 'transformer.wte.weight': '../model.safetensors' } };
  expectSpError(() => Checkpoint.open(writeDir({ ...files, [SHARD_INDEX]: Buffer.from(JSON.stringify(escape)) })), 'BAD_FILE', /expected a file name in/);
  // a missing shard
  const dir = writeDir(files);
  fs.rmSync(path.join(dir, 'model-00003-of-00003.safetensors'));
  expectSpError(() => Checkpoint.open(dir), 'NOT_FOUND', /cannot open .*model-00003-of-00003\.safetensors/);
  // not JSON
  expectSpError(() => Checkpoint.open(writeDir({ ...files, [SHARD_INDEX]: Buffer.from('{') })), 'BAD_FILE', /cannot read .*model\.safetensors\.index\.json as JSON/);
});

test('a folder with only pytorch_model.bin is refused (never unpickled), saying why and what to do', () => {
  const dir = tmpDir('sp-pickle-');
  fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type":"gpt2"}');
  fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'PK\x03\x04 not really');
  expectSpError(() => Checkpoint.open(dir), 'UNSUPPORTED', /has only pytorch_model\.bin: pickle files can execute code .*refs\/pr\/N.*safe_serialization=True/);
});

test('sharded repo from the hub: shards into the HF cache, interrupted shard leaves nothing, then loads by repo id offline', async () => {
  const single = writeRandomGpt2(spec).dir;
  const files = shardFiles(single);
  const repo = 'someone/sharded-gpt2';
  const fake = (over: Record<string, FakeFile> = {}): Record<string, FakeFile> => ({ ...Object.fromEntries(Object.entries(files).map(([k, body]) => [k, { body }])), ...over });

  let hub = await startFakeHub({ [repo]: mainOnly(fake({ 'model-00002-of-00003.safetensors': { body: files['model-00002-of-00003.safetensors']!, behaviour: 'truncate' } })) });
  try {
    await expect(downloadModel(repo, { hubUrl: hub.url })).rejects.toMatchObject({ code: 'OFFLINE', message: expect.stringContaining('model-00002-of-00003.safetensors') });
    expect(fs.existsSync(path.join(tmp, 'hf'))).toBe(false);
  } finally {
    await hub.close();
  }
  hub = await startFakeHub({ [repo]: mainOnly(fake()) });
  let dir: string;
  try {
    dir = await downloadModel(repo, { hubUrl: hub.url });
    expect(hub.requests.filter((r) => r.startsWith('GET /someone') && r.endsWith('.safetensors'))).toHaveLength(3);
  } finally {
    await hub.close();
  }
  expect(dir).toBe(path.join(tmp, 'hf', 'models--someone--sharded-gpt2', 'snapshots', commitOf(repo, 'main')));
  expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', SHARD_INDEX]);
  process.env.HF_HUB_OFFLINE = '1';
  expect(await resolveModel(repo)).toBe(dir);
  const ids = randomIds(6, 3);
  const model = await gpt2(repo, { backend: 'wasm' });
  try {
    const t = model.forward(ids);
    const got = t.dataSync() as Float32Array;
    t.dispose();
    expect(Buffer.from(got.buffer).equals(Buffer.from((await logits(single, ids)).buffer))).toBe(true);
  } finally {
    model.dispose();
  }
});
