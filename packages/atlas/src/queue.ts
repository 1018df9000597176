/**
 * The scan on BullMQ (Redis): one job per unit, its id derived from the scan key and the unit, so
 * enqueuing a scan twice adds nothing. Results go to the store (PostgreSQL), not to Redis: the store
 * is the record of what is done, the queue only hands out what is left.
 */
import { Queue, type ConnectionOptions, type Job } from 'bullmq';
import { SpError } from '@sp/core';
import { planUnits } from './scan.js';
import { settingsDigest } from './settings.js';
import { redact } from './redact.js';
import type { AtlasStore, ScanKey, ScanSettings, Unit } from './types.js';

export const DEFAULT_QUEUE_NAME = 'sp-atlas';

/** What a job carries: everything a worker needs besides the model and the store. */
export interface UnitJobData {
  modelDigest: string;
  settingsDigest: string;
  settings: ScanSettings;
  unit: Unit;
  /** The scan's layers (a worker computing a corpus pass does all of them in one stream). */
  layers: number[];
  model: string;
  /** The corpus file as the enqueuing machine named it (a worker may be given its own path). */
  corpusPath: string | null;
}

/** `redis://[user:password@]host:port[/db]` (or rediss:// for TLS) → ioredis options; bad URLs are one-line errors. */
export function redisConnection(url: string, extra: Record<string, unknown> = {}): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SpError('BAD_INPUT', `--queue must be a redis:// URL (got ${redact(url)})`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new SpError('BAD_INPUT', `--queue must be a redis:// URL (got ${redact(url)})`);
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new SpError('BAD_INPUT', `the Redis database in ${redact(url)} must be a number`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    ...extra,
  } as ConnectionOptions;
}

/** BullMQ ids may not contain ':' (nor be integers): dashes between the digests and the unit. */
export function unitJobId(key: ScanKey, unit: Unit): string {
  return `${key.modelDigest}-${key.settingsDigest}-L${unit.layer}-${unit.start}-${unit.end}`;
}

export interface QueueOptions {
  /** Queue name (default sp-atlas); several scans and models may share one queue. */
  name?: string;
  /** Keep reconnecting when Redis goes away (a long-lived watcher); default: fail fast (a one-shot command). */
  reconnect?: boolean;
  /** Tries per unit before it lands in the failed list (default 5), with exponential backoff from backoffMs (default 2000). */
  attempts?: number;
  backoffMs?: number;
}

export function openQueue(url: string, opts: QueueOptions = {}): Queue<UnitJobData> {
  // Fail fast when Redis is down for a one-shot command (the worker, by contrast, waits for it).
  const connection = opts.reconnect ? redisConnection(url, { maxRetriesPerRequest: null }) : redisConnection(url, { maxRetriesPerRequest: 3, enableOfflineQueue: false, retryStrategy: () => null });
  return new Queue<UnitJobData>(opts.name ?? DEFAULT_QUEUE_NAME, { connection });
}

export interface EnqueueOptions extends QueueOptions {
  store: AtlasStore;
  modelName: string;
  modelDigest: string;
  settings: ScanSettings;
  layers: number[];
  neurons: number[] | { start: number; end: number };
  corpusPath?: string | null;
}

export interface EnqueueSummary {
  scan: ScanKey;
  units_total: number;
  /** Units already in the store (not enqueued). */
  units_done: number;
  /** New jobs; units already queued (waiting, running, or done) are not added again. */
  units_added: number;
  units_already_queued: number;
  /** Failed jobs of this scan put back in the queue. */
  units_retried: number;
}

/** Records the scan in the store and enqueues its units not yet done; failed units of the scan are retried. */
export async function enqueueScan(queue: Queue<UnitJobData>, o: EnqueueOptions): Promise<EnqueueSummary> {
  const key: ScanKey = { modelDigest: o.modelDigest, settingsDigest: settingsDigest(o.settings) };
  const neuronList = Array.isArray(o.neurons) ? o.neurons : Array.from({ length: o.neurons.end - o.neurons.start }, (_, i) => (o.neurons as { start: number }).start + i);
  const units = planUnits(o.layers, neuronList, o.settings.blockSize);
  const layers = [...new Set(o.layers)].sort((a, b) => a - b);
  await o.store.openScan({
    ...key, model: o.modelName, settings: o.settings, layers,
    neurons: { start: Math.min(...neuronList), end: Math.max(...neuronList) + 1 }, unitsTotal: units.length,
  });
  const done = new Set((await o.store.doneUnits(key)).map((u) => `${u.layer}/${u.start}/${u.end}`));
  const todo = units.filter((u) => !done.has(`${u.layer}/${u.start}/${u.end}`));
  let added = 0, already = 0, retried = 0;
  for (let i = 0; i < todo.length; i += 500) {
    const chunk = todo.slice(i, i + 500);
    const ids = chunk.map((u) => unitJobId(key, u));
    const existing = await Promise.all(ids.map((id) => queue.getJob(id)));
    const fresh = chunk.filter((_, k) => !existing[k]);
    for (const job of existing) {
      if (!job) continue;
      already++;
      if (await job.isFailed()) {
        await job.retry('failed');
        retried++;
      }
    }
    // jobId makes add idempotent even against a concurrent enqueuer: BullMQ ignores an id it holds.
    await queue.addBulk(fresh.map((unit) => ({
      name: 'unit',
      data: { modelDigest: key.modelDigest, settingsDigest: key.settingsDigest, settings: o.settings, unit, layers, model: o.modelName, corpusPath: o.corpusPath ?? null },
      opts: {
        jobId: unitJobId(key, unit),
        attempts: o.attempts ?? 5,
        backoff: { type: 'exponential', delay: o.backoffMs ?? 2000 },
        // The store holds the results; keep a window of completed jobs for the status pace, and failures until retried.
        removeOnComplete: { count: 10_000 },
        removeOnFail: false,
      },
    })));
    added += fresh.length;
  }
  return { scan: key, units_total: units.length, units_done: units.length - todo.length, units_added: added, units_already_queued: already, units_retried: retried };
}

export interface FailedUnit {
  job: string;
  unit: Unit;
  attempts: number;
  error: string;
}

export interface QueueStatus {
  scan: ScanKey | null;
  model: string | null;
  units_total: number | null;
  units_done: number | null;
  neurons_done: number | null;
  waiting: number;
  running: number;
  delayed: number;
  failed: number;
  failed_units: FailedUnit[];
  /** Units per hour over the latest completed units, and the time left at that pace (null when unknown). */
  units_per_hour: number | null;
  eta_seconds: number | null;
}

/** done/running/failed/ETA per scan (the store's view of done, the queue's of the rest). */
export async function queueStatus(queue: Queue<UnitJobData>, store: AtlasStore | null): Promise<QueueStatus[]> {
  const scanOf = (j: Job<UnitJobData> | undefined) => (j?.data ? `${j.data.modelDigest}-${j.data.settingsDigest}` : '');
  const [waiting, active, delayed, failed, completed] = await Promise.all([
    queue.getJobs(['waiting', 'prioritized']), queue.getJobs(['active']), queue.getJobs(['delayed']), queue.getJobs(['failed']), queue.getJobs(['completed'], 0, 199, false),
  ]);
  const scans = store ? await store.scans() : [];
  const keys = new Set<string>([...scans.map((s) => `${s.modelDigest}-${s.settingsDigest}`), ...[...waiting, ...active, ...delayed, ...failed].map(scanOf).filter(Boolean)]);
  const out: QueueStatus[] = [];
  for (const k of keys) {
    const info = scans.find((s) => `${s.modelDigest}-${s.settingsDigest}` === k);
    const mine = (js: Job<UnitJobData>[]) => js.filter((j) => scanOf(j) === k);
    const f = mine(failed);
    const times = mine(completed).map((j) => j.finishedOn ?? 0).filter((t) => t > 0).sort((a, b) => a - b);
    const rate = times.length >= 2 && times[times.length - 1] > times[0] ? ((times.length - 1) / (times[times.length - 1] - times[0])) * 3_600_000 : null;
    const left = info ? info.unitsTotal - info.unitsDone : mine(waiting).length + mine(active).length + mine(delayed).length;
    const [md, sd] = k.split('-');
    out.push({
      scan: { modelDigest: md, settingsDigest: sd },
      model: info?.model ?? f[0]?.data.model ?? null,
      units_total: info?.unitsTotal ?? null,
      units_done: info?.unitsDone ?? null,
      neurons_done: info?.neuronsDone ?? null,
      waiting: mine(waiting).length,
      running: mine(active).length,
      delayed: mine(delayed).length,
      failed: f.length,
      failed_units: f.map((j) => ({ job: String(j.id), unit: j.data.unit, attempts: j.attemptsMade, error: j.failedReason ?? '' })),
      units_per_hour: rate,
      eta_seconds: rate && left > 0 ? (left / rate) * 3600 : left === 0 ? 0 : null,
    });
  }
  return out;
}
