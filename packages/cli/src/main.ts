#!/usr/bin/env node
/** `sp`: the command-line face of @sp/core. Errors are one line on stderr and a non-zero exit. */
import { SpError } from '@sp/core';
import { Command, CommanderError } from 'commander';
import { registerDownload } from './commands/download.js';
import { registerGenerate } from './commands/generate.js';
import { registerLens } from './commands/lens.js';
import { registerNeuron } from './commands/neuron.js';
import { registerProbe } from './commands/probe.js';
import { registerRank } from './commands/rank.js';

const program = new Command('sp')
  .description('GPT-2 interpretability: logit lens, speaking probes, neurons, generation')
  .option('-v, --verbose', 'more diagnostics on stderr (backend, timings, stack traces)')
  .option('--backend <name>', 'tfjs backend: wasm | cpu | tensorflow (default: $SP_BACKEND or the best installed)')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

for (const register of [registerLens, registerGenerate, registerNeuron, registerProbe, registerRank, registerDownload]) register(program);

const verbose = process.argv.includes('--verbose') || process.argv.includes('-v');

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Commander has already printed its one-line message (or help/version, exit 0).
    process.exitCode = e.exitCode;
  } else if (e instanceof SpError) {
    process.stderr.write(`error: ${e.message}\n`);
    if (verbose && e.cause) process.stderr.write(`${String(e.cause)}\n`);
    process.exitCode = 1;
  } else {
    const err = e as Error;
    process.stderr.write(`error: ${err?.message?.split('\n')[0] ?? String(e)} (internal error; --verbose shows the stack)\n`);
    if (verbose) process.stderr.write(`${err?.stack ?? ''}\n`);
    process.exitCode = 2;
  }
}
