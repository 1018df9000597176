/**
 * `sp scan`: the neuron atlas of a model into a store (SQLite file). Resumable: units already in
 * the store are skipped, so a killed scan started again continues where it was.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpError } from '@sp/core/light';
import type { Command } from 'commander';
import { loadModel, parseFloatOpt, parseIntOpt, parseSeed, printJson } from '../common.js';

interface ScanCli {
  model: string; layers?: string; neurons?: string; kind: string; store?: string; promptName?: string; promptsDir: string[];
  samples?: number; maxNewTokens?: number; seed?: number; temperature?: number; topK?: number; topP?: number; repetitionPenalty?: number;
  corpus?: string; topExamples?: number; window?: number; context?: number; blockSize?: number; json?: boolean;
  queue?: string; queueName?: string; status?: boolean; attempts?: number;
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerScan(program: Command): void {
  program
    .command('scan')
    .description('neuron atlas: every FF neuron\'s embedding-space projection, speaking-probe samples, max-activating corpus examples and agreement scores, into a resumable store')
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--layers <list>', 'layers, e.g. 0-11 or 3,5,7-9 (default: all)')
    .option('--neurons <list>', 'neuron indices, e.g. 0-3071 or 3,5,7-9 (default: all)')
    .option('--kind <key|value>', 'FF key (c_fc column) or FF value (c_proj row)', 'key')
    .option('--store <path>', 'SQLite file of results (created when missing)')
    .option('--prompt-name <name>', 'speaking-probe prompt from the library (default term-means)')
    .option('--prompts-dir <dir>', 'extra prompt library directory (repeatable)', collect, [])
    .option('--samples <n>', 'probe samples per neuron, 0 = no probes (default 3)', parseIntOpt('--samples', 0, 1000))
    .option('--max-new-tokens <n>', 'tokens per probe sample (default 30)', parseIntOpt('--max-new-tokens', 1))
    .option('--seed <n>', 'sampling seed, 0..4294967295 (default 1)', parseSeed)
    .option('--temperature <t>', 'probe sampling temperature (default 0.5)', parseFloatOpt('--temperature'))
    .option('--top-k <k>', 'probe top-k filter, 0 = off (default 50)', parseIntOpt('--top-k'))
    .option('--top-p <p>', 'probe nucleus filter in (0, 1] (default 1)', parseFloatOpt('--top-p'))
    .option('--repetition-penalty <r>', 'probe repetition penalty (default 2)', parseFloatOpt('--repetition-penalty'))
    .option('--corpus <file>', 'plain text (one document per line) or .jsonl (a "text" field per line) for max-activating examples')
    .option('--top-examples <k>', 'max-activating examples kept per neuron (default 10)', parseIntOpt('--top-examples', 1))
    .option('--window <n>', 'corpus tokens per forward pass (default 64)', parseIntOpt('--window', 1))
    .option('--context <n>', 'tokens of context either side of an example (default 10)', parseIntOpt('--context', 0))
    .option('--block-size <n>', 'neurons per unit of work (default 64)', parseIntOpt('--block-size', 1))
    .option('--queue <url>', 'distributed: enqueue the units on this Redis (BullMQ) instead of computing them; `sp worker` computes them (needs a postgres:// --store)')
    .option('--queue-name <name>', 'BullMQ queue name (default sp-atlas)')
    .option('--attempts <n>', 'with --queue: tries per unit before it is listed as failed (default 5)', parseIntOpt('--attempts', 1, 100))
    .option('--status', 'with --queue: done/running/failed units and the ETA of the queued scans, then exit')
    .option('--json', 'print a JSON summary on stdout (scan key, units done/skipped, neurons, seconds, neurons/hour)')
    .action(async (o: ScanCli, cmd: Command) => {
      const atlas = await import('@sp/atlas');
      const { resolveModel } = await import('@sp/core');
      if (o.status) return await queueStatusCommand(o, atlas);
      if (o.queue !== undefined) {
        atlas.redisConnection(o.queue);
        if (!o.store || !atlas.isPostgresUrl(o.store)) throw new SpError('BAD_INPUT', '--queue needs a postgres:// --store (the workers on every machine write there)');
      }
      if (!o.store) throw new SpError('BAD_INPUT', '--store <path> is required (an SQLite file; created when missing)');
      if (o.kind !== 'key' && o.kind !== 'value') throw new SpError('BAD_INPUT', `--kind must be key or value (got "${o.kind}")`);
      // Everything checkable without the model is checked before loading it.
      const corpus = o.corpus !== undefined ? atlas.readCorpus(o.corpus) : null;
      const settings = atlas.resolveSettings({
        kind: o.kind, promptName: o.promptName, promptDirs: o.promptsDir, samples: o.samples, maxNewTokens: o.maxNewTokens, seed: o.seed,
        temperature: o.temperature, topK: o.topK, topP: o.topP, repetitionPenalty: o.repetitionPenalty,
        corpus: corpus ? { digest: corpus.digest, name: corpus.name } : null,
        topExamples: o.topExamples, window: o.window, context: o.context, blockSize: o.blockSize,
      });
      // A mistyped command must not leave a new empty store behind: a server or an existing file is
      // opened (and so checked) now, a new file only once the model and the ranges are checked.
      const openNow = atlas.isPostgresUrl(o.store) || fs.existsSync(o.store);
      const storeDir = path.dirname(path.resolve(o.store));
      if (!openNow && !(fs.existsSync(storeDir) && fs.statSync(storeDir).isDirectory())) throw new SpError('NOT_FOUND', `store folder ${storeDir} does not exist`);
      let opened = openNow ? await atlas.openStore(o.store) : null;
      try {
        const dir = await resolveModel(o.model);
        const digest = await atlas.modelDigest(dir);
        const { model } = await loadModel(cmd, dir);
        try {
          const { nLayer, dMlp, nCtx } = model.config;
          const layers = o.layers === undefined ? Array.from({ length: nLayer }, (_, i) => i) : atlas.parseRange(o.layers, 0, nLayer, '--layers');
          const neurons = o.neurons === undefined ? Array.from({ length: dMlp }, (_, i) => i) : atlas.parseRange(o.neurons, 0, dMlp, '--neurons');
          if (corpus && settings.window + 1 > nCtx) throw new SpError('OUT_OF_RANGE', `--window ${settings.window} + the BOS token exceeds the model's context of ${nCtx} (use --window ≤ ${nCtx - 1})`);
          const promptLen = atlas.probePrompt(model, settings.prompt).ids.length;
          if (settings.samples > 0 && promptLen + settings.maxNewTokens > nCtx) {
            throw new SpError('TOO_LONG', `the prompt (${promptLen} tokens) + --max-new-tokens ${settings.maxNewTokens} exceeds the model's context of ${nCtx}`);
          }
          const store = opened ?? (opened = await atlas.openStore(o.store));
          if (o.queue !== undefined) {
            const queue = atlas.openQueue(o.queue, { name: o.queueName });
            try {
              const summary = await atlas.enqueueScan(queue, {
                store, modelName: o.model, modelDigest: digest, settings, layers, neurons, attempts: o.attempts, corpusPath: o.corpus !== undefined ? path.resolve(o.corpus) : null,
              }).catch((e) => { throw queueError(e, o.queue!, atlas.redact, atlas.redactText); });
              process.stderr.write(`scan ${summary.scan.settingsDigest.slice(0, 12)}: ${summary.units_added} units enqueued on ${atlas.redact(o.queue)}, ${summary.units_already_queued} already queued (${summary.units_retried} failed ones retried), ${summary.units_done} already done, of ${summary.units_total}; start \`sp worker\` on each machine\n`);
              if (o.json) printJson({ ...summary, queue: atlas.redact(o.queue), store: atlas.redact(o.store), layers, kind: settings.kind });
            } finally {
              await queue.close().catch(() => {});
            }
            return;
          }
          const abort = new AbortController();
          const onSigint = () => {
            if (abort.signal.aborted) process.exit(130);
            process.stderr.write('\nstopping after the unit in flight (Ctrl-C again to quit now; the next run resumes)\n');
            abort.abort();
          };
          process.on('SIGINT', onSigint);
          const progress = await progressReporter();
          try {
            const summary = await atlas.runScan({
              model, modelName: o.model, modelDigest: digest, store, settings, layers, neurons, corpus, signal: abort.signal, onProgress: progress.update,
            });
            progress.stop();
            const rate = summary.neurons_per_hour === null ? '' : `, ${Math.round(summary.neurons_per_hour)} neurons/hour`;
            process.stderr.write(`scan ${summary.scan.settingsDigest.slice(0, 12)}: ${summary.neurons_computed} neurons in ${summary.units_done} units computed, ${summary.units_skipped} units already done, ${summary.seconds.toFixed(1)} s${rate}${summary.stopped ? ' (stopped early)' : ''}\n`);
            if (o.json) printJson({ ...summary, store: o.store, layers, kind: settings.kind });
            if (summary.stopped) process.exitCode = 130;
          } finally {
            progress.stop();
            process.off('SIGINT', onSigint);
          }
        } finally {
          model.dispose();
        }
      } finally {
        await opened?.close();
      }
    });
}

/** cli-progress bars on a TTY stderr (corpus pass, then units with ETA); nothing otherwise (the final line says it all). */
async function progressReporter(): Promise<{ update: (p: import('@sp/atlas').ScanProgress) => void; stop: () => void }> {
  if (!process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const { default: cliProgress } = await import('cli-progress');
  let bar: InstanceType<typeof cliProgress.SingleBar> | null = null;
  let phase = '';
  const stop = () => {
    bar?.stop();
    bar = null;
  };
  return {
    stop,
    update: (p) => {
      if (p.phase !== phase) {
        stop();
        phase = p.phase;
        bar = new cliProgress.SingleBar({
          stream: process.stderr,
          format: p.phase === 'corpus' ? 'corpus [{bar}] {value}/{total} windows | ETA {eta_formatted}' : 'scan   [{bar}] {value}/{total} units | {neurons} neurons | ETA {eta_formatted}',
          hideCursor: true,
          etaBuffer: 20,
        }, cliProgress.Presets.shades_classic);
        bar.start(p.total, p.done, { neurons: `${p.neuronsDone}/${p.neuronsTotal}` });
      }
      bar?.update(p.done, { neurons: `${p.neuronsDone}/${p.neuronsTotal}` });
    },
  };
}

type Atlas = typeof import('@sp/atlas');

/** Redis down is a one-line error naming the (masked) URL, not ioredis' stack. */
function queueError(e: unknown, url: string, redact: (u: string) => string, redactText: (t: string) => string): unknown {
  if (SpError.is(e)) return e;
  return new SpError('NOT_FOUND', `cannot reach the queue at ${redact(url)}: ${redactText(String((e as Error)?.message ?? e).split('\n')[0])}`);
}

/** `sp scan --status --queue URL [--store URL]`: per scan, done/total from the store, waiting/running/failed from the queue, the pace and ETA. */
async function queueStatusCommand(o: ScanCli, atlas: Atlas): Promise<void> {
  if (!o.queue) throw new SpError('BAD_INPUT', '--status needs --queue <redis://HOST:PORT> (and --store for the done counts)');
  atlas.redisConnection(o.queue);
  const store = o.store ? await atlas.openStore(o.store, { create: false }) : null;
  const queue = atlas.openQueue(o.queue, { name: o.queueName });
  try {
    const status = await atlas.queueStatus(queue, store).catch((e) => { throw queueError(e, o.queue!, atlas.redact, atlas.redactText); });
    if (o.json) {
      printJson({ queue: atlas.redact(o.queue), store: o.store ? atlas.redact(o.store) : null, scans: status });
      return;
    }
    if (status.length === 0) process.stdout.write('no scans queued\n');
    for (const s of status) {
      const eta = s.eta_seconds === null ? 'ETA unknown' : s.eta_seconds === 0 ? 'complete' : `ETA ${formatSeconds(s.eta_seconds)}`;
      const done = s.units_total === null ? '' : `${s.units_done}/${s.units_total} units done, `;
      process.stdout.write(`scan ${s.scan!.settingsDigest.slice(0, 12)} (${s.model ?? '?'}): ${done}${s.running} running, ${s.waiting + s.delayed} waiting, ${s.failed} failed; ${eta}\n`);
      for (const f of s.failed_units) process.stdout.write(`  failed: layer ${f.unit.layer} neurons [${f.unit.start}, ${f.unit.end}) after ${f.attempts} attempts: ${atlas.redactText(f.error)}\n`);
    }
  } finally {
    await queue.close().catch(() => {});
    await store?.close();
  }
}

function formatSeconds(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
