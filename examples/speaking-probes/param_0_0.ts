// The article's "words starting with G" neuron: FF key 0 of layer 0 (GPT-2 medium). The first
// prompt misses it; the few-shot synonyms prompt (the article's lower-case variant) does better.
// Run: pnpm -s tsx examples/speaking-probes/param_0_0.ts [model]
import { fileURLToPath } from 'node:url';
import { loadPrompt, speakingProbe } from '@sp/core';
import { openExampleModel, printProbe, probeOptions, type ExampleOptions, type Log } from './common.js';

export async function main(opts: ExampleOptions = {}, log: Log = console.log) {
  const { model, testModel } = await openExampleModel(opts.model, log);
  try {
    const results = [];
    for (const name of ['term-means', 'synonyms-lowercase']) {
      // <param_0_0> in the template is the same FF key as --neuron key:0,0.
      const prompt = loadPrompt(name).template.replace('<neuron>', '<param_0_0>');
      const r = await speakingProbe(model, { prompt, ...probeOptions(opts) });
      printProbe(r, log);
      results.push(r);
    }
    return { results, testModel };
  } finally {
    model.dispose();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main({ model: process.argv[2] });
