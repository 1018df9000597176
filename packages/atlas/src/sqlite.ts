/**
 * The SQLite store. Driver: `node:sqlite` (DatabaseSync) where the running Node has it (Node 24 in
 * CI), else better-sqlite3 12.x (Node 20: it is a native addon built for one Node ABI, so it cannot
 * serve both). WAL mode; each unit is one IMMEDIATE transaction of INSERT OR IGNOREs on the primary
 * keys, so a unit written twice (a resumed or a concurrent scan) leaves the same rows.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { SpError } from '@sp/core';
import { PROJECTION_LISTS, SCHEMA_DDL, SCHEMA_VERSION, tokenColumn } from './schema.js';
import { keyWhere, neuronSql, rowToHit, rowToRecord, rowToScan, SCANS_SQL, searchSql, type Row } from './sql.js';
import type {
  AtlasStore, CorpusExample, CorpusPassKey, NeuronKind, NeuronRecord, ScanInfo, ScanKey, SearchHit, SearchQuery, Unit,
} from './types.js';


/** The few calls both drivers share (their statement objects have the same run/get/all). */
export interface SqlStatement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): Row | undefined;
  all(...params: unknown[]): Row[];
}
export interface SqlDatabase {
  exec(sql: string): void;
  prepare(sql: string): SqlStatement;
  close(): void;
}

/** Which driver this Node uses: 'node:sqlite' or 'better-sqlite3'. */
export let sqliteDriver: 'node:sqlite' | 'better-sqlite3' | undefined;

type DriverCtor = new (f: string) => SqlDatabase;
let driverCtor: DriverCtor | undefined;

/** The driver, chosen once per process: node:sqlite when this Node has it, else better-sqlite3. */
function driver(): DriverCtor {
  if (driverCtor) return driverCtor;
  // getBuiltinModule (Node ≥ 20.16) answers undefined for a module this Node lacks, without the
  // failing import() that some loaders (jest's ESM runtime) would cache as a pending promise.
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  let mod: { DatabaseSync?: DriverCtor } | undefined;
  try {
    mod = getBuiltin?.call(process, 'node:sqlite') as { DatabaseSync?: DriverCtor } | undefined;
  } catch {
    mod = undefined;
  }
  if (mod?.DatabaseSync) {
    sqliteDriver = 'node:sqlite';
    return (driverCtor = mod.DatabaseSync);
  }
  try {
    driverCtor = createRequire(import.meta.url)('better-sqlite3') as DriverCtor;
  } catch (e) {
    throw new SpError('UNSUPPORTED', `no SQLite driver: this Node (${process.version}) has no node:sqlite and better-sqlite3 did not load (${String((e as Error).message).split('\n')[0]})`);
  }
  sqliteDriver = 'better-sqlite3';
  return driverCtor;
}

async function openDatabase(file: string): Promise<SqlDatabase> {
  const Db = driver();
  return new Db(file);
}

export interface SqliteOpenOptions {
  /** Create the file when missing (default true); false: a missing file is a NOT_FOUND error (readers). */
  create?: boolean;
}

const j = (x: unknown) => JSON.stringify(x);
const now = () => new Date().toISOString();

export class SqliteStore implements AtlasStore {
  /** @internal */
  private constructor(readonly file: string, private readonly db: SqlDatabase) {}

  static async open(file: string, opts: SqliteOpenOptions = {}): Promise<SqliteStore> {
    const abs = path.resolve(file);
    const dir = path.dirname(abs);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new SpError('NOT_FOUND', `store folder ${dir} does not exist`);
    const exists = fs.existsSync(abs);
    if (!exists && opts.create === false) throw new SpError('NOT_FOUND', `no atlas store at ${file}`);
    if (exists && fs.statSync(abs).isDirectory()) throw new SpError('BAD_INPUT', `store ${file} is a directory`);
    // A file that is not SQLite is named as such here, before any driver call.
    if (exists && fs.statSync(abs).size > 0) {
      const head = Buffer.alloc(16);
      const fd = fs.openSync(abs, 'r');
      try {
        fs.readSync(fd, head, 0, 16, 0);
      } finally {
        fs.closeSync(fd);
      }
      if (head.toString('latin1') !== 'SQLite format 3\0') throw new SpError('BAD_FILE', `${file} is not an SQLite file`);
    }
    let db: SqlDatabase;
    try {
      db = await openDatabase(abs);
    } catch (e) {
      if (SpError.is(e)) throw e;
      throw new SpError('BAD_FILE', `cannot open ${file} as SQLite: ${String((e as Error).message).split('\n')[0]}`);
    }
    try {
      db.exec('PRAGMA busy_timeout = 30000');
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = NORMAL');
      const store = new SqliteStore(file, db);
      store.migrate();
      return store;
    } catch (e) {
      db.close();
      if (SpError.is(e)) throw e;
      throw new SpError('BAD_FILE', `${file} is not an atlas store: ${String((e as Error).message).split('\n')[0]}`);
    }
  }

  /** @internal */
  private migrate(): void {
    this.tx(() => {
      for (const ddl of SCHEMA_DDL) this.db.exec(ddl);
      const v = this.db.prepare('SELECT value FROM atlas_meta WHERE key = ?').get('schema_version');
      if (!v) this.db.prepare('INSERT INTO atlas_meta (key, value) VALUES (?, ?)').run('schema_version', String(SCHEMA_VERSION));
      else if (Number(v.value) !== SCHEMA_VERSION) throw new SpError('UNSUPPORTED', `${this.file} has atlas schema version ${String(v.value)}; this sp reads version ${SCHEMA_VERSION}`);
    });
  }

  /** Runs fn in one IMMEDIATE transaction (the write lock up front: no upgrade deadlock between processes). */
  private tx<T>(fn: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const r = fn();
      this.db.exec('COMMIT');
      return r;
    } catch (e) {
      this.db.exec('ROLLBACK');
      throw e;
    }
  }

  async openScan(info: Omit<ScanInfo, 'unitsDone' | 'neuronsDone' | 'createdAt'>): Promise<ScanInfo> {
    this.tx(() => {
      this.db.prepare(`INSERT OR IGNORE INTO scans (model_digest, settings_digest, model, settings_json, layers_json, neuron_start, neuron_end, units_total, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(info.modelDigest, info.settingsDigest, info.model, j(info.settings), j(info.layers), info.neurons.start, info.neurons.end, info.unitsTotal, now());
    });
    return (await this.scans()).find((s) => s.modelDigest === info.modelDigest && s.settingsDigest === info.settingsDigest)!;
  }

  async doneUnits(key: ScanKey): Promise<Unit[]> {
    return this.db.prepare('SELECT layer, start, "end" FROM units WHERE model_digest = ? AND settings_digest = ? ORDER BY layer, start, "end"')
      .all(key.modelDigest, key.settingsDigest)
      .map((r) => ({ layer: Number(r.layer), start: Number(r.start), end: Number(r.end) }));
  }

  async writeUnit(key: ScanKey, unit: Unit, records: NeuronRecord[]): Promise<void> {
    const n = this.db.prepare(`INSERT OR IGNORE INTO neurons (model_digest, kind, layer, idx, settings_digest, projection_json, samples_json, examples_json, example_projection_overlap, probe_projection_overlap)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    const t = this.db.prepare(`INSERT OR IGNORE INTO projection_tokens (model_digest, settings_digest, kind, layer, idx, list, rank, token_id, token, score)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    const u = this.db.prepare('INSERT OR IGNORE INTO units (model_digest, settings_digest, layer, start, "end", done_at) VALUES (?, ?, ?, ?, ?, ?)');
    this.tx(() => {
      for (const r of records) {
        n.run(key.modelDigest, r.kind, r.layer, r.index, key.settingsDigest, j(r.projection), j(r.samples), j(r.examples), r.scores.example_projection_overlap, r.scores.probe_projection_overlap);
        for (const list of PROJECTION_LISTS) {
          r.projection[list].forEach((p, rank) => t.run(key.modelDigest, key.settingsDigest, r.kind, r.layer, r.index, list, rank, p.id, tokenColumn(p.token), p.score));
        }
      }
      u.run(key.modelDigest, key.settingsDigest, unit.layer, unit.start, unit.end, now());
    });
  }

  async corpusExamples(key: CorpusPassKey, layer: number): Promise<CorpusExample[][] | null> {
    const r = this.db.prepare('SELECT examples_json FROM corpus_examples WHERE model_digest = ? AND corpus_digest = ? AND pass_digest = ? AND layer = ?')
      .get(key.modelDigest, key.corpusDigest, key.passDigest, layer);
    return r ? (JSON.parse(String(r.examples_json)) as CorpusExample[][]) : null;
  }

  async writeCorpusExamples(key: CorpusPassKey, layer: number, perNeuron: CorpusExample[][]): Promise<void> {
    this.tx(() => {
      this.db.prepare('INSERT OR IGNORE INTO corpus_examples (model_digest, corpus_digest, pass_digest, layer, examples_json) VALUES (?, ?, ?, ?, ?)')
        .run(key.modelDigest, key.corpusDigest, key.passDigest, layer, j(perNeuron));
    });
  }

  async scans(): Promise<ScanInfo[]> {
    return this.db.prepare(SCANS_SQL).all().map(rowToScan);
  }

  async neuron(layer: number, index: number, opts: { kind?: NeuronKind } & Partial<ScanKey> = {}): Promise<NeuronRecord | null> {
    const { sql, params } = neuronSql(layer, index, opts);
    const r = this.db.prepare(sql).get(...params);
    return r ? rowToRecord(r) : null;
  }

  async search(q: SearchQuery & Partial<ScanKey>): Promise<{ total: number; hits: SearchHit[] }> {
    const s = searchSql(q);
    const total = Number(this.db.prepare(s.count).get(...s.params)!.c);
    return { total, hits: this.db.prepare(s.page).all(...s.params, ...s.pageParams).map(rowToHit) };
  }

  async *allNeurons(key: Partial<ScanKey> = {}): AsyncIterable<NeuronRecord> {
    const { where, params } = keyWhere('n', key);
    // Keyset pages: a whole gpt2-xl scan never sits in memory.
    const page = this.db.prepare(`SELECT n.* FROM neurons n WHERE (n.layer, n.idx, n.kind, n.settings_digest, n.model_digest) > (?, ?, ?, ?, ?)${where}
      ORDER BY n.layer, n.idx, n.kind, n.settings_digest, n.model_digest LIMIT 256`);
    let after: unknown[] = [-1, -1, '', '', ''];
    for (;;) {
      const rows = page.all(...after, ...params);
      for (const r of rows) yield rowToRecord(r);
      if (rows.length < 256) return;
      const last = rows[rows.length - 1];
      after = [last.layer, last.idx, last.kind, last.settings_digest, last.model_digest];
    }
  }

  async close(): Promise<void> {
    this.db.close();
  }
}



