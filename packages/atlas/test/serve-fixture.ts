/** A real SQLite store filled by the real scan (runScan) of a random model, for the server tests. */
import fs from 'node:fs';
import path from 'node:path';
import { gpt2 } from '@sp/core';
import { modelDigest, openStore, readCorpus, resolveSettings, runScan, type AtlasStore } from '@sp/atlas';
import { tmpDir } from '../../core/test/helpers/fixtures.js';
import { randomModelDir } from './helpers.js';

const DOCS = [
  'Tokyo is the capital of Japan, and Kyoto was the old one. The fox jumps over the lazy dog.',
  'Neurons in language models respond to tokens, phrases and ideas; some fire on <b>many</b> things.',
  'Ada Lovelace wrote the first program in 1843 for the engine & its cards.',
];

export interface ServeFixture {
  store: AtlasStore;
  file: string;
  modelDir: string;
}

/** Key neurons 0..9 of layers 0 and 1 (2 probe samples, corpus examples), then value neurons 0..3 of layer 1. */
export async function serveFixture(): Promise<ServeFixture> {
  const dir = tmpDir('sp-atlas-serve-');
  const { dir: modelDir } = randomModelDir({ nLayer: 2, nHead: 2, dModel: 16, nCtx: 64 }, 53);
  const corpusFile = path.join(dir, 'corpus.txt');
  fs.writeFileSync(corpusFile, `${DOCS.join('\n')}\n`);
  const corpus = readCorpus(corpusFile);
  const file = path.join(dir, 'atlas.sqlite');
  const store = await openStore(file);
  const model = await gpt2(modelDir, { backend: process.env.SP_BACKEND ?? 'wasm' });
  try {
    const md = await modelDigest(modelDir);
    const keys = resolveSettings({ kind: 'key', samples: 2, maxNewTokens: 5, seed: 3, blockSize: 5, corpus: { digest: corpus.digest, name: corpus.name }, window: 16, topExamples: 4, context: 3 });
    await runScan({ model, modelName: modelDir, modelDigest: md, store, settings: keys, layers: [0, 1], neurons: { start: 0, end: 10 }, corpus });
    const values = resolveSettings({ kind: 'value', samples: 1, maxNewTokens: 4, seed: 4, blockSize: 4 });
    await runScan({ model, modelName: modelDir, modelDigest: md, store, settings: values, layers: [1], neurons: { start: 0, end: 4 } });
  } finally {
    model.dispose();
  }
  return { store, file, modelDir };
}
