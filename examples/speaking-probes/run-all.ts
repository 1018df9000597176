// Every experiment of the speaking-probes article, in order.
// Run: pnpm -s tsx examples/speaking-probes/run-all.ts [model]
import { fileURLToPath } from 'node:url';
import type { ExampleOptions, Log } from './common.js';
import { main as param10_8 } from './param_10_8.js';
import { main as param11_2 } from './param_11_2.js';
import { main as param0_0 } from './param_0_0.js';
import { main as childrenDog } from './children_dog.js';
import { main as googleShow } from './google_show.js';

export const EXPERIMENTS = { param_10_8: param10_8, param_11_2: param11_2, param_0_0: param0_0, children_dog: childrenDog, google_show: googleShow };

export async function main(opts: ExampleOptions = {}, log: Log = console.log) {
  const out: Record<string, Awaited<ReturnType<typeof param10_8>>> = {};
  for (const [name, run] of Object.entries(EXPERIMENTS)) {
    log(`\n=== ${name} ===`);
    out[name] = await run(opts, log);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main({ model: process.argv[2] });
