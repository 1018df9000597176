// ' google' + ' show' with the "invented word" prompt: 'google' swallows 'show'; scaling google's
// embedding by 0.9 lets 'show' come through (the article's samples: "show and giggle").
// Run: pnpm -s tsx examples/speaking-probes/google_show.ts [model]
import { fileURLToPath } from 'node:url';
import { loadPrompt, speakingProbe } from '@sp/core';
import { openExampleModel, printProbe, probeOptions, type ExampleOptions, type Log } from './common.js';

export async function main(opts: ExampleOptions = {}, log: Log = console.log) {
  const { model, testModel } = await openExampleModel(opts.model, log);
  try {
    const results = [];
    for (const expr of ['google + show', '0.9*google + show']) {
      const r = await speakingProbe(model, { prompt: loadPrompt('invented-word').template, neurons: [`expr:${expr}`], ...probeOptions(opts) });
      printProbe(r, log);
      results.push(r);
    }
    return { results, testModel };
  } finally {
    model.dispose();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main({ model: process.argv[2] });
