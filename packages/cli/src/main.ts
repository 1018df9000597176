#!/usr/bin/env node
/** `sp`: the command-line face of @sp/core. Errors are one line on stderr and a non-zero exit. */
import { checkEnv, MAX_THREADS, parseEngine, parseThreads, SpError } from '@sp/core/light';
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import os from 'node:os';

// A reader that stops early (`sp lens --json | head -c 10`) closes stdout: that is the reader's
// choice, not a failure, so end quietly with success as other Unix tools do (no "write EPIPE").
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

// Commands are imported only when used: `sp neuron` and `sp download` never load TensorFlow.js
// (~200-350 ms of module loading), the model commands do.
const COMMANDS: Record<string, () => Promise<(program: Command) => void>> = {
  lens: async () => (await import('./commands/lens.js')).registerLens,
  generate: async () => (await import('./commands/generate.js')).registerGenerate,
  neuron: async () => (await import('./commands/neuron.js')).registerNeuron,
  probe: async () => (await import('./commands/probe.js')).registerProbe,
  rank: async () => (await import('./commands/rank.js')).registerRank,
  download: async () => (await import('./commands/download.js')).registerDownload,
  models: async () => (await import('./commands/models.js')).registerModels,
  patch: async () => (await import('./commands/patch.js')).registerPatch,
  attention: async () => (await import('./commands/attention.js')).registerAttention,
  dla: async () => (await import('./commands/dla.js')).registerDla,
  attr: async () => (await import('./commands/attr.js')).registerAttr,
  worker: async () => (await import('./commands/worker.js')).registerWorker,
  scan: async () => (await import('./commands/scan.js')).registerScan,
  atlas: async () => (await import('./commands/atlas.js')).registerAtlas,
};

const program = new Command('sp')
  .description('GPT-2 interpretability: logit lens, speaking probes, neurons, generation')
  .option('-v, --verbose', 'more diagnostics on stderr (backend, timings, stack traces)')
  .option('--backend <name>', 'tfjs backend: wasm | cpu | tensorflow | webgpu (default: $SP_BACKEND or the best installed; webgpu only when asked)')
  .option('--allow-nonfinite', 'load checkpoints with NaN/Infinity weights (refused by default)')
  .option('--threads <n>', `threads for the matrix engine on wasm/cpu, 1..${MAX_THREADS} (default: $SP_THREADS or one per core, at most 8)`)
  .option('--engine <name>', 'matrix engine on wasm/cpu: ort (onnxruntime-node) | wasm (sp\'s SIMD kernel) | tfjs (default: $SP_ENGINE, else ort when installed)')
  .version(version, '-V, --version', 'print the version')
  // One line on stderr for usage errors too: the hint goes on the error's own line.
  .configureOutput({ outputError: (str, write) => write(`${str.trimEnd()} (run with --help for usage)\n`) })
  .exitOverride();

// One rule for flags and environment: --threads and $SP_THREADS go through the same parser, and a
// set SP_* variable with a bad value is an error here, before any work (not silently ignored).
program.hook('preAction', () => {
  const t = program.opts().threads as string | undefined;
  if (t !== undefined) process.env.SP_THREADS = String(parseThreads('--threads', t));
  const e = program.opts().engine as string | undefined;
  if (e !== undefined) process.env.SP_ENGINE = parseEngine('--engine', e);
  checkEnv();
  const n = Number(process.env.SP_THREADS);
  const cores = os.cpus().length;
  if (n > cores) process.stderr.write(`warning: ${t !== undefined ? '--threads' : 'SP_THREADS'} ${n} is more than the ${cores} cores here; that is usually slower\n`);
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
