// A synthetic polysemous neuron: the sum of the token embeddings of ' children' and ' dog'.
// The article's samples drift between the two meanings.
// Run: pnpm -s tsx examples/speaking-probes/children_dog.ts [model]
import { fileURLToPath } from 'node:url';
import { loadPrompt, speakingProbe } from '@sp/core';
import { openExampleModel, printProbe, probeOptions, type ExampleOptions, type Log } from './common.js';

export async function main(opts: ExampleOptions = {}, log: Log = console.log) {
  const { model, testModel } = await openExampleModel(opts.model, log);
  try {
    // A bare word is the token with a leading space: ' children' + ' dog'.
    const r = await speakingProbe(model, { prompt: loadPrompt('term-means').template, neurons: ['expr:children + dog'], ...probeOptions(opts) });
    printProbe(r, log);
    return { results: [r], testModel };
  } finally {
    model.dispose();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main({ model: process.argv[2] });
