/**
 * A preset name resolves to `$SP_WEIGHTS_DIR/<name>` holding model.safetensors alone: config.json is
 * optional (README), the config is inferred from the tensor shapes, and nothing is downloaded.
 */
import fs from 'node:fs';
import path from 'node:path';
import { gpt2 } from '@sp/core';
import { checkpointOf } from '@sp/core/internals';
import { tmpDir } from '../helpers/fixtures.js';
import { writeRandomGpt2 } from '../helpers/random-gpt2.js';

let saved: string | undefined;
let tmp: string;
beforeAll(() => {
  saved = process.env.SP_WEIGHTS_DIR;
  tmp = tmpDir('sp-weights-dir-');
  process.env.SP_WEIGHTS_DIR = tmp;
});
afterAll(() => {
  if (saved === undefined) delete process.env.SP_WEIGHTS_DIR;
  else process.env.SP_WEIGHTS_DIR = saved;
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('gpt2("distilgpt2") loads $SP_WEIGHTS_DIR/distilgpt2 without config.json, with no network', async () => {
  const dir = path.join(tmp, 'distilgpt2');
  fs.mkdirSync(dir);
  writeRandomGpt2({ nLayer: 3, nHead: 2, dModel: 128, nCtx: 48, config: false }, dir);
  expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  const fail = (async () => {
    throw new Error('network used');
  }) as typeof fetch;
  const model = await gpt2('distilgpt2', { backend: 'wasm', fetchImpl: fail });
  try {
    expect(checkpointOf(model).dir).toBe(dir);
    expect(model.config).toMatchObject({ nLayer: 3, dModel: 128, nHead: 2, nCtx: 48, dVocab: 50257 });
  } finally {
    model.dispose();
  }
});
