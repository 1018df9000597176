#!/usr/bin/env node
/** `sp`: the command-line face of @sp/core. Errors are one line on stderr and a non-zero exit. */
import { SpError } from '@sp/core/light';
import { Command, CommanderError } from 'commander';

// Commands are imported only when used: `sp neuron` and `sp download` never load TensorFlow.js
// (~200-350 ms of module loading), the model commands do.
const COMMANDS: Record<string, () => Promise<(program: Command) => void>> = {
  lens: async () => (await import('./commands/lens.js')).registerLens,
  generate: async () => (await import('./commands/generate.js')).registerGenerate,
  neuron: async () => (await import('./commands/neuron.js')).registerNeuron,
  probe: async () => (await import('./commands/probe.js')).registerProbe,
  rank: async () => (await import('./commands/rank.js')).registerRank,
  download: async () => (await import('./commands/download.js')).registerDownload,
};

const program = new Command('sp')
  .description('GPT-2 interpretability: logit lens, speaking probes, neurons, generation')
  .option('-v, --verbose', 'more diagnostics on stderr (backend, timings, stack traces)')
  .option('--backend <name>', 'tfjs backend: wasm | cpu | tensorflow (default: $SP_BACKEND or the best installed)')
  .option('--threads <n>', "threads for sp's matrix kernel on wasm/cpu (default: $SP_THREADS or one per core, at most 8)")
  // One line on stderr for usage errors too: the hint goes on the error's own line.
  .configureOutput({ outputError: (str, write) => write(`${str.trimEnd()} (run with --help for usage)\n`) })
  .exitOverride();

program.hook('preAction', () => {
  const t = program.opts().threads as string | undefined;
  if (t === undefined) return;
  if (!/^[1-9][0-9]*$/.test(t)) throw new SpError('BAD_INPUT', `--threads must be a positive integer (got "${t}")`);
  process.env.SP_THREADS = t;
});

const invoked = process.argv.slice(2).find((a) => !a.startsWith('-') && a in COMMANDS);
for (const [name, load] of Object.entries(COMMANDS)) if (!invoked || name === invoked) (await load())(program);

const verbose = process.argv.includes('--verbose') || process.argv.includes('-v');

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Commander has already printed its one-line message (or help/version, exit 0).
    process.exitCode = e.exitCode;
  } else if (SpError.is(e)) {
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

// Exit explicitly once stdout/stderr are flushed: live handles (the wasm backend's worker threads,
// keep-alive sockets) would otherwise keep a finished command running.
await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((done) => s.write('', () => done()))));
process.exit(process.exitCode ?? 0);
