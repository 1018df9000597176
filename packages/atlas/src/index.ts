/** @sp/atlas — a neuron atlas for GPT-2: scan every FF neuron into a resumable store and browse it. */
export type * from './types.js';
export {
  SCAN_DEFAULTS, resolveSettings, validateSettings, checkPrompt, canonicalJson, sha256, settingsDigest, passDigest, fileDigest, modelDigest, parseRange, toRuns,
  type ScanSettingsInput,
} from './settings.js';
export { SCHEMA_VERSION, SCHEMA_DDL, TABLES, PROJECTION_LISTS, type ProjectionList } from './schema.js';
export { SqliteStore, sqliteDriver, type SqliteOpenOptions, type SqlDatabase, type SqlStatement } from './sqlite.js';
export { openStore, isPostgresUrl, type OpenStoreOptions } from './store.js';
export { computeUnit, projectBlock, probeSamples, probePrompt, neuronVector, agreementScores, distinctWords, normalizeWord } from './compute.js';
export { readCorpus, corpusWindows, type Corpus, type CorpusWindow } from './corpus.js';
export { corpusPass, TopK, type CorpusPassOptions } from './examples.js';
export { planUnits, runScan, corpusPassKey, type RunScanOptions, type ScanProgress, type ScanSummary } from './scan.js';
export { exportJsonl, exportJsonlTo, exportParquet, exportRow, checkOutputPath, EXPORT_FORMATS, type ExportFormat, type ExportRow } from './export.js';
export { atlasApp, serveAtlas, reprobeCommand, shellQuote, PAGE_DIR, type AtlasServerOptions, type ServeOptions } from './server.js';
export { PgStore, isConnectionError, type PgOpenOptions } from './pg.js';
export { redact, redactText } from './redact.js';
export {
  DEFAULT_QUEUE_NAME, redisConnection, unitJobId, openQueue, enqueueScan, queueStatus,
  type UnitJobData, type QueueOptions, type EnqueueOptions, type EnqueueSummary, type FailedUnit, type QueueStatus,
} from './queue.js';
export { startWorker, type WorkerOptions, type RunningWorker } from './worker.js';
