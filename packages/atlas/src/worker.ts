/**
 * A BullMQ worker over the scan's units: the model loaded once, each job's unit computed with
 * `computeUnit` and written to the store in one transaction. A worker killed mid-unit leaves its job
 * locked until the lock expires; BullMQ's stalled-job check then hands it to another worker, whose
 * write of the same keys is a no-op where the first got through — so the table ends complete, once.
 */
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { SpError, type GPT2 } from '@sp/core';
import { computeUnit } from './compute.js';
import { readCorpus } from './corpus.js';
import { corpusPass } from './examples.js';
import { isConnectionError } from './pg.js';
import { DEFAULT_QUEUE_NAME, redisConnection, type UnitJobData } from './queue.js';
import { redactText } from './redact.js';
import { corpusPassKey } from './scan.js';
import { settingsDigest, validateSettings } from './settings.js';
import type { AtlasStore, CorpusExample, ScanKey } from './types.js';

export interface WorkerOptions {
  queueUrl: string;
  queueName?: string;
  store: AtlasStore;
  model: GPT2;
  modelDigest: string;
  /** Jobs at once in this process (default 1: one model, one CPU budget). */
  concurrency?: number;
  /** The corpus file on this machine (default: the path the scan was enqueued with). */
  corpusPath?: string;
  /** How long a job stays locked without a heartbeat before another worker may take it (default 30 s); the stalled check runs as often. */
  lockDurationMs?: number;
  /** How long a unit's write keeps retrying while the store is unreachable (default 15 min), backoff from 500 ms to 15 s. */
  writeRetryMs?: number;
  /** One-line messages (passwords masked). */
  log?: (line: string) => void;
  /** A job of another model was seen and put back: the CLI stops such a worker with an error. */
  onWrongModel?: (jobModelDigest: string, jobModel: string) => void;
}

export interface RunningWorker {
  worker: Worker<UnitJobData>;
  /** Units this process computed and wrote. */
  readonly unitsDone: number;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function checkJob(d: UnitJobData, model: GPT2): void {
  if (!d || typeof d !== 'object' || !d.unit || !d.settings) throw new SpError('BAD_INPUT', 'the job carries no unit or settings');
  validateSettings(d.settings);
  if (settingsDigest(d.settings) !== d.settingsDigest) throw new SpError('BAD_INPUT', 'the job\'s settings do not match its settings digest');
  const { layer, start, end } = d.unit;
  const { nLayer, dMlp } = model.config;
  if (!Number.isInteger(layer) || layer < 0 || layer >= nLayer) throw new SpError('OUT_OF_RANGE', `unit layer ${layer} is out of range [0, ${nLayer - 1}]`);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > dMlp || start >= end) throw new SpError('OUT_OF_RANGE', `unit neurons [${start}, ${end}) are out of range [0, ${dMlp})`);
}

export function startWorker(o: WorkerOptions): RunningWorker {
  const log = o.log ?? (() => {});
  const lock = o.lockDurationMs ?? 30_000;
  const examples = new Map<string, CorpusExample[][]>();
  let unitsDone = 0;

  /** The layer's corpus examples: from the store's cache, else one corpus pass for the scan's uncached layers (deterministic, so two workers racing write the same). */
  async function layerExamples(d: UnitJobData): Promise<CorpusExample[][] | null> {
    const pk = corpusPassKey(d.modelDigest, d.settings);
    if (!pk) return null;
    const id = (l: number) => `${pk.corpusDigest}/${pk.passDigest}/${l}`;
    if (examples.has(id(d.unit.layer))) return examples.get(id(d.unit.layer))!;
    const cached = await o.store.corpusExamples(pk, d.unit.layer);
    if (cached) {
      examples.set(id(d.unit.layer), cached);
      return cached;
    }
    const file = o.corpusPath ?? d.corpusPath;
    if (!file) throw new SpError('BAD_INPUT', `the scan uses corpus ${d.settings.corpus!.name}: start the worker with --corpus FILE`);
    const corpus = readCorpus(file);
    if (corpus.digest !== pk.corpusDigest) throw new SpError('BAD_INPUT', `corpus ${file} is not the scan's corpus ${d.settings.corpus!.name} (sha256 differs)`);
    const missing: number[] = [];
    for (const l of d.layers.includes(d.unit.layer) ? d.layers : [d.unit.layer]) if (!(await o.store.corpusExamples(pk, l))) missing.push(l);
    log(`corpus pass over ${corpus.name} for layers ${missing.join(',')}`);
    const got = await corpusPass(o.model, corpus, missing, { window: d.settings.window, topExamples: d.settings.topExamples, context: d.settings.context });
    for (const [l, perNeuron] of got) await o.store.writeCorpusExamples(pk, l, perNeuron);
    const stored = await o.store.corpusExamples(pk, d.unit.layer);
    examples.set(id(d.unit.layer), stored!);
    return stored;
  }

  async function write(key: ScanKey, d: UnitJobData, records: Awaited<ReturnType<typeof computeUnit>>): Promise<void> {
    const deadline = Date.now() + (o.writeRetryMs ?? 15 * 60_000);
    for (let wait = 500; ; wait = Math.min(wait * 2, 15_000)) {
      try {
        return await o.store.writeUnit(key, d.unit, records);
      } catch (e) {
        // The unit is computed: keep it while the store is away rather than give the job up.
        if (!isConnectionError(e) || Date.now() + wait > deadline) throw e;
        log(`store unreachable writing layer ${d.unit.layer} [${d.unit.start}, ${d.unit.end}) (${redactText(String((e as Error).message).split('\n')[0])}); retrying in ${wait} ms`);
        await sleep(wait);
      }
    }
  }

  const worker = new Worker<UnitJobData>(o.queueName ?? DEFAULT_QUEUE_NAME, async (job: Job<UnitJobData>, token?: string) => {
    const d = job.data;
    if (d?.modelDigest !== undefined && d.modelDigest !== o.modelDigest) {
      // Not ours to compute: back in the queue untouched (no attempt used) for a worker with that model.
      await job.moveToDelayed(Date.now() + 1000, token);
      o.onWrongModel?.(d.modelDigest, String(d.model));
      throw new DelayedError();
    }
    try {
      checkJob(d, o.model);
    } catch (e) {
      // A job this worker cannot read will not get better with retries.
      throw new UnrecoverableError((e as Error).message);
    }
    const key: ScanKey = { modelDigest: d.modelDigest, settingsDigest: d.settingsDigest };
    const records = await computeUnit(o.model, d.settings, d.unit, await layerExamples(d));
    await write(key, d, records);
    unitsDone++;
    log(`unit layer ${d.unit.layer} [${d.unit.start}, ${d.unit.end}) written (${records.length} neurons)`);
    return { neurons: records.length };
  }, {
    connection: redisConnection(o.queueUrl, { maxRetriesPerRequest: null }),
    concurrency: o.concurrency ?? 1,
    lockDuration: lock,
    stalledInterval: lock,
    maxStalledCount: 2,
    autorun: true,
  });
  worker.on('error', (e) => log(`queue: ${redactText(String(e.message).split('\n')[0])}`));
  worker.on('failed', (job, e) => {
    if (job && !(e instanceof DelayedError) && e.name !== 'DelayedError') log(`unit layer ${job.data?.unit?.layer} [${job.data?.unit?.start}, ${job.data?.unit?.end}) failed (attempt ${job.attemptsMade}): ${redactText(e.message.split('\n')[0])}`);
  });
  return {
    worker,
    get unitsDone() { return unitsDone; },
    close: () => worker.close(),
  };
}
