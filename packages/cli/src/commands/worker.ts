/**
 * `sp worker`: takes the scan's units from a BullMQ queue (Redis) and writes each one's results to
 * the store (PostgreSQL) in one transaction. Run one or more on any number of machines; each loads the
 * model once. SIGINT/SIGTERM: finish the unit in flight, then exit.
 */
import { SpError } from '@sp/core/light';
import type { Command } from 'commander';
import { loadModel, parseIntOpt } from '../common.js';

interface WorkerCli { queue?: string; queueName?: string; store?: string; model: string; concurrency: number; corpus?: string; lockDuration?: number; exitWhenIdle?: boolean }

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('distributed scan: take units from the queue (sp scan --queue), compute them and write them to the store; start one per machine (or core budget)')
    .option('--queue <url>', 'Redis of the BullMQ queue, e.g. redis://HOST:6379')
    .option('--queue-name <name>', 'BullMQ queue name (default sp-atlas)')
    .option('--store <url>', 'PostgreSQL store, e.g. postgres://USER:PASSWORD@HOST:5432/DB')
    .option('--model <dir|name>', 'model directory or preset name (must be the scan\'s model: its digest is checked)', 'gpt2')
    .option('--concurrency <n>', 'units at once in this process (default 1)', parseIntOpt('--concurrency', 1, 64), 1)
    .option('--corpus <file>', 'this machine\'s copy of the scan\'s corpus (default: the path the scan was enqueued with)')
    .option('--lock-duration <ms>', 'a unit\'s lock without a heartbeat, after which another worker takes it (default 30000)', parseIntOpt('--lock-duration', 200))
    .option('--exit-when-idle', 'exit once the queue has no waiting, delayed or running units')
    .action(async (o: WorkerCli, cmd: Command) => {
      if (!o.queue) throw new SpError('BAD_INPUT', '--queue <redis://HOST:PORT> is required');
      if (!o.store) throw new SpError('BAD_INPUT', '--store <postgres://…> is required');
      const atlas = await import('@sp/atlas');
      const { resolveModel } = await import('@sp/core');
      atlas.redisConnection(o.queue);
      if (!atlas.isPostgresUrl(o.store)) throw new SpError('BAD_INPUT', `--store must be a postgres:// URL for a worker (got ${atlas.redact(o.store)})`);
      const log = (line: string) => process.stderr.write(`worker ${process.pid}: ${atlas.redactText(line)}\n`);
      const store = await atlas.PgStore.open(o.store, { onError: (m) => log(`store: ${m}`) });
      try {
        const dir = await resolveModel(o.model);
        const digest = await atlas.modelDigest(dir);
        const { model } = await loadModel(cmd, dir);
        try {
          let wrong: string | null = null;
          let resolveDone!: () => void;
          const done = new Promise<void>((r) => { resolveDone = r; });
          const w = atlas.startWorker({
            queueUrl: o.queue, queueName: o.queueName, store, model, modelDigest: digest, concurrency: o.concurrency, corpusPath: o.corpus,
            lockDurationMs: o.lockDuration, log,
            onWrongModel: (md, name) => {
              wrong ??= `the queue holds units of model ${name} (digest ${md.slice(0, 12)}…); this worker loaded ${o.model} (digest ${digest.slice(0, 12)}…): refusing them (start the worker with the scan's model)`;
              resolveDone();
            },
          });
          log(`model ${o.model} (digest ${digest.slice(0, 12)}…), queue ${atlas.redact(o.queue)}, store ${atlas.redact(o.store)}, concurrency ${o.concurrency}`);
          const stop = () => { log('stopping after the unit in flight'); resolveDone(); };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
          let idle: NodeJS.Timeout | undefined;
          if (o.exitWhenIdle) {
            const queue = atlas.openQueue(o.queue, { name: o.queueName, reconnect: true });
            queue.on('error', () => {}); // Redis restarting: the worker logs it already
            idle = setInterval(() => {
              queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'paused').then((c) => {
                if (Object.values(c).every((n) => n === 0)) resolveDone();
              }, () => {});
            }, 500);
            done.finally(() => queue.close().catch(() => {}));
          }
          await done;
          if (idle) clearInterval(idle);
          await w.close();
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          log(`done: ${w.unitsDone} units written`);
          if (wrong) throw new SpError('BAD_INPUT', wrong);
        } finally {
          model.dispose();
        }
      } finally {
        await store.close();
      }
    });
}
