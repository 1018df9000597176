// The article's "Japanese names" neuron: FF key 8 of layer 10 (GPT-2 medium), probed with
// 'The term "<neuron>" means' and shown beside its embedding-space projection.
// Run: pnpm -s tsx examples/speaking-probes/param_10_8.ts [model]
import { fileURLToPath } from 'node:url';
import { loadPrompt, speakingProbe } from '@sp/core';
import { openExampleModel, printProbe, probeOptions, type ExampleOptions, type Log } from './common.js';

export async function main(opts: ExampleOptions = {}, log: Log = console.log) {
  const { model, testModel } = await openExampleModel(opts.model, log);
  try {
    const r = await speakingProbe(model, { prompt: loadPrompt('term-means').template, neurons: ['key:10,8'], ...probeOptions(opts) });
    printProbe(r, log);
    return { results: [r], testModel };
  } finally {
    model.dispose();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main({ model: process.argv[2] });
