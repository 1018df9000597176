/**
 * The PostgreSQL store (node-postgres): the SQLite store's schema (schema.ts) and keys, every query
 * parameterised, each unit one transaction of INSERT … ON CONFLICT DO NOTHING on the primary keys,
 * so a unit written twice (a re-handed job, a second worker) leaves the same rows.
 */
import pg from 'pg';
import { SpError } from '@sp/core';
import { PROJECTION_LISTS, SCHEMA_DDL, SCHEMA_VERSION, tokenColumn } from './schema.js';
import { keyWhere, neuronSql, rowToHit, rowToRecord, rowToScan, SCANS_SQL, searchSql, type Row } from './sql.js';
import { redact, redactText } from './redact.js';
import type {
  AtlasStore, CorpusExample, CorpusPassKey, NeuronKind, NeuronRecord, ScanInfo, ScanKey, SearchHit, SearchQuery, Unit,
} from './types.js';

const j = (x: unknown) => JSON.stringify(x);
const now = () => new Date().toISOString();

export interface PgOpenOptions {
  /** Pool size (default 4). */
  max?: number;
  /** Where the pool reports errors of idle connections (PostgreSQL restarted); default: ignored (the next query reconnects). */
  onError?: (message: string) => void;
}

/** Errors that mean "PostgreSQL is not reachable right now" (worth retrying), not "this query is wrong". */
export function isConnectionError(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  const code = String(err?.code ?? '');
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH'].includes(code)) return true;
  // 08: connection exception; 57P01-03: admin shutdown / crash shutdown / cannot connect now; 53300: too many connections.
  if (/^08/.test(code) || ['57P01', '57P02', '57P03', '53300'].includes(code)) return true;
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(String(err?.message ?? ''));
}

/** Postgres ↔ the store's SQL: `?` placeholders become $1, $2, … (the SQL text is ours; values are always parameters). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

export class PgStore implements AtlasStore {
  /** @internal */
  private constructor(readonly url: string, private readonly pool: pg.Pool) {}

  /** The URL with its password masked (for logs). */
  get label(): string {
    return redact(this.url);
  }

  static async open(url: string, opts: PgOpenOptions = {}): Promise<PgStore> {
    const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 4, connectionTimeoutMillis: 10_000 });
    // An idle client losing its server emits 'error' on the pool; unhandled, that would kill the process.
    pool.on('error', (e) => opts.onError?.(redactText(e.message)));
    const store = new PgStore(url, pool);
    try {
      await store.migrate();
    } catch (e) {
      await pool.end().catch(() => {});
      if (SpError.is(e)) throw e;
      throw new SpError(isConnectionError(e) ? 'NOT_FOUND' : 'BAD_FILE', `cannot open the PostgreSQL store ${redact(url)}: ${redactText(String((e as Error).message).split('\n')[0])}`);
    }
    return store;
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    // A checked-out client reports a lost server as an 'error' event; the failing query rejects too, so the event is only swallowed here.
    const onError = () => {};
    c.on('error', onError);
    let broken: Error | undefined;
    try {
      await c.query('BEGIN');
      const r = await fn(c);
      await c.query('COMMIT');
      return r;
    } catch (e) {
      if (isConnectionError(e)) broken = e as Error;
      else await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.off('error', onError);
      // A broken connection is destroyed, not returned to the pool.
      c.release(broken);
    }
  }

  private async q(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.pool.query(numbered(sql), params)).rows as Row[];
  }

  private async migrate(): Promise<void> {
    await this.tx(async (c) => {
      // Several workers start at once: CREATE TABLE IF NOT EXISTS races in PostgreSQL, so take a lock first.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', ['sp-atlas-schema']);
      for (const ddl of SCHEMA_DDL) await c.query(ddl);
      const v = (await c.query('SELECT value FROM atlas_meta WHERE key = $1', ['schema_version'])).rows[0];
      if (!v) await c.query('INSERT INTO atlas_meta (key, value) VALUES ($1, $2)', ['schema_version', String(SCHEMA_VERSION)]);
      else if (Number(v.value) !== SCHEMA_VERSION) throw new SpError('UNSUPPORTED', `${redact(this.url)} has atlas schema version ${String(v.value)}; this sp reads version ${SCHEMA_VERSION}`);
    });
  }

  async openScan(info: Omit<ScanInfo, 'unitsDone' | 'neuronsDone' | 'createdAt'>): Promise<ScanInfo> {
    await this.q(`INSERT INTO scans (model_digest, settings_digest, model, settings_json, layers_json, neuron_start, neuron_end, units_total, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model_digest, settings_digest) DO NOTHING`,
    [info.modelDigest, info.settingsDigest, info.model, j(info.settings), j(info.layers), info.neurons.start, info.neurons.end, info.unitsTotal, now()]);
    return (await this.scans()).find((s) => s.modelDigest === info.modelDigest && s.settingsDigest === info.settingsDigest)!;
  }

  async doneUnits(key: ScanKey): Promise<Unit[]> {
    return (await this.q('SELECT layer, start, "end" FROM units WHERE model_digest = ? AND settings_digest = ? ORDER BY layer, start, "end"', [key.modelDigest, key.settingsDigest]))
      .map((r) => ({ layer: Number(r.layer), start: Number(r.start), end: Number(r.end) }));
  }

  async writeUnit(key: ScanKey, unit: Unit, records: NeuronRecord[]): Promise<void> {
    // Column arrays through unnest(): one statement per table, still fully parameterised.
    const n: unknown[][] = Array.from({ length: 10 }, () => []);
    const t: unknown[][] = Array.from({ length: 10 }, () => []);
    for (const r of records) {
      [key.modelDigest, r.kind, r.layer, r.index, key.settingsDigest, j(r.projection), j(r.samples), j(r.examples), r.scores.example_projection_overlap, r.scores.probe_projection_overlap]
        .forEach((v, i) => n[i].push(v));
      for (const list of PROJECTION_LISTS) {
        r.projection[list].forEach((p, rank) => {
          [key.modelDigest, key.settingsDigest, r.kind, r.layer, r.index, list, rank, p.id, tokenColumn(p.token), p.score].forEach((v, i) => t[i].push(v));
        });
      }
    }
    await this.tx(async (c) => {
      await c.query(`INSERT INTO neurons (model_digest, kind, layer, idx, settings_digest, projection_json, samples_json, examples_json, example_projection_overlap, probe_projection_overlap)
        SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::float8[], $10::float8[])
        ON CONFLICT (model_digest, kind, layer, idx, settings_digest) DO NOTHING`, n);
      await c.query(`INSERT INTO projection_tokens (model_digest, settings_digest, kind, layer, idx, list, rank, token_id, token, score)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::int[], $8::int[], $9::text[], $10::float8[])
        ON CONFLICT (model_digest, settings_digest, kind, layer, idx, list, rank) DO NOTHING`, t);
      await c.query(`INSERT INTO units (model_digest, settings_digest, layer, start, "end", done_at) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (model_digest, settings_digest, layer, start, "end") DO NOTHING`, [key.modelDigest, key.settingsDigest, unit.layer, unit.start, unit.end, now()]);
    });
  }

  async corpusExamples(key: CorpusPassKey, layer: number): Promise<CorpusExample[][] | null> {
    const r = (await this.q('SELECT examples_json FROM corpus_examples WHERE model_digest = ? AND corpus_digest = ? AND pass_digest = ? AND layer = ?',
      [key.modelDigest, key.corpusDigest, key.passDigest, layer]))[0];
    return r ? (JSON.parse(String(r.examples_json)) as CorpusExample[][]) : null;
  }

  async writeCorpusExamples(key: CorpusPassKey, layer: number, perNeuron: CorpusExample[][]): Promise<void> {
    await this.q(`INSERT INTO corpus_examples (model_digest, corpus_digest, pass_digest, layer, examples_json) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (model_digest, corpus_digest, pass_digest, layer) DO NOTHING`, [key.modelDigest, key.corpusDigest, key.passDigest, layer, j(perNeuron)]);
  }

  async scans(): Promise<ScanInfo[]> {
    return (await this.q(SCANS_SQL)).map(rowToScan);
  }

  async neuron(layer: number, index: number, opts: { kind?: NeuronKind } & Partial<ScanKey> = {}): Promise<NeuronRecord | null> {
    const { sql, params } = neuronSql(layer, index, opts);
    const r = (await this.q(sql, params))[0];
    return r ? rowToRecord(r) : null;
  }

  async search(q: SearchQuery & Partial<ScanKey>): Promise<{ total: number; hits: SearchHit[] }> {
    const s = searchSql(q);
    const total = Number((await this.q(s.count, s.params))[0].c);
    return { total, hits: (await this.q(s.page, [...s.params, ...s.pageParams])).map(rowToHit) };
  }

  async *allNeurons(key: Partial<ScanKey> = {}): AsyncIterable<NeuronRecord> {
    const { where, params } = keyWhere('n', key);
    // Keyset pages (COLLATE "C": the same byte order as SQLite's), so a whole scan never sits in memory.
    let after: unknown[] = [-1, -1, '', '', ''];
    for (;;) {
      const rows = await this.q(`SELECT n.* FROM neurons n WHERE (n.layer, n.idx, n.kind COLLATE "C", n.settings_digest COLLATE "C", n.model_digest COLLATE "C") > (?, ?, ?, ?, ?)${where}
        ORDER BY n.layer, n.idx, n.kind COLLATE "C", n.settings_digest COLLATE "C", n.model_digest COLLATE "C" LIMIT 256`, [...after, ...params]);
      for (const r of rows) yield rowToRecord(r);
      if (rows.length < 256) return;
      const last = rows[rows.length - 1];
      after = [last.layer, last.idx, last.kind, last.settings_digest, last.model_digest];
    }
  }

  /** When the scan's units were written (ISO times, oldest first): the status command's pace. */
  async unitTimes(key: ScanKey): Promise<string[]> {
    return (await this.q('SELECT done_at FROM units WHERE model_digest = ? AND settings_digest = ? ORDER BY done_at', [key.modelDigest, key.settingsDigest])).map((r) => String(r.done_at));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}



