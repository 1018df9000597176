/**
 * The store-independent SQL of the atlas: both stores (SQLite, PostgreSQL) run these same statements
 * (`?` placeholders; the PostgreSQL store numbers them) over the schema of schema.ts, and turn rows
 * into records the same way, so their answers are identical.
 */
import { likePattern, tokenColumn } from './schema.js';
import type { NeuronKind, NeuronRecord, ScanInfo, ScanKey, ScanSettings, SearchHit, SearchQuery } from './types.js';

export type Row = Record<string, unknown>;

/** `AND alias.col = ?` conditions for the given key parts. */
export function keyWhere(alias: string, k: { kind?: NeuronKind } & Partial<ScanKey>): { where: string; params: unknown[] } {
  let where = '';
  const params: unknown[] = [];
  if (k.modelDigest !== undefined) { where += ` AND ${alias}.model_digest = ?`; params.push(k.modelDigest); }
  if (k.settingsDigest !== undefined) { where += ` AND ${alias}.settings_digest = ?`; params.push(k.settingsDigest); }
  if (k.kind !== undefined) { where += ` AND ${alias}.kind = ?`; params.push(k.kind); }
  return { where, params };
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

export function rowToRecord(r: Row): NeuronRecord {
  return {
    layer: Number(r.layer),
    index: Number(r.idx),
    kind: String(r.kind) as NeuronKind,
    projection: JSON.parse(String(r.projection_json)),
    samples: JSON.parse(String(r.samples_json)),
    examples: JSON.parse(String(r.examples_json)),
    scores: { example_projection_overlap: numOrNull(r.example_projection_overlap), probe_projection_overlap: numOrNull(r.probe_projection_overlap) },
  };
}

/** The two statements of a search: the hit count and one page of hits (params: `params`, then `pageParams`). */
export interface SearchSql {
  count: string;
  page: string;
  params: unknown[];
  pageParams: unknown[];
}

/**
 * A search as SQL. A token search ranks by where the token sits in the neuron's top list (0 = best),
 * then by its score; `text` matches the top tokens and the sample texts, case-insensitively.
 */
export function searchSql(q: SearchQuery & Partial<ScanKey>): SearchSql {
  const { where, params } = keyWhere('n', q);
  const conds: string[] = [];
  const p: unknown[] = [...params];
  if (q.layer !== undefined) { conds.push('n.layer = ?'); p.push(q.layer); }
  if (q.minExampleOverlap !== undefined) { conds.push('n.example_projection_overlap >= ?'); p.push(q.minExampleOverlap); }
  if (q.minProbeOverlap !== undefined) { conds.push('n.probe_projection_overlap >= ?'); p.push(q.minProbeOverlap); }
  if (q.text !== undefined && q.text !== '') {
    const like = likePattern(q.text);
    conds.push(`(EXISTS (SELECT 1 FROM projection_tokens x WHERE x.model_digest = n.model_digest AND x.settings_digest = n.settings_digest AND x.kind = n.kind
      AND x.layer = n.layer AND x.idx = n.idx AND x.list = 'top' AND LOWER(x.token) LIKE ? ESCAPE '\\') OR LOWER(n.samples_json) LIKE ? ESCAPE '\\')`);
    p.push(like, like);
  }
  const extra = conds.map((c) => ` AND ${c}`).join('');
  let from: string, rankCols: string, order: string;
  const tokenParams: unknown[] = [];
  if (q.token !== undefined) {
    from = `projection_tokens t JOIN neurons n ON n.model_digest = t.model_digest AND n.settings_digest = t.settings_digest AND n.kind = t.kind AND n.layer = t.layer AND n.idx = t.idx`;
    rankCols = 't.rank AS hit_rank, t.score AS hit_score';
    tokenParams.push(tokenColumn(q.token));
    order = 't.rank ASC, t.score DESC, n.layer, n.idx, n.kind, n.settings_digest';
  } else {
    from = 'neurons n';
    rankCols = 'CAST(NULL AS INTEGER) AS hit_rank, CAST(NULL AS DOUBLE PRECISION) AS hit_score';
    order = 'n.layer, n.idx, n.kind, n.settings_digest';
  }
  if (q.sort === 'layer') order = 'n.layer, n.idx, n.kind, n.settings_digest';
  else if (q.sort === 'example_projection_overlap' || q.sort === 'probe_projection_overlap') order = `n.${q.sort} IS NULL, n.${q.sort} DESC, ${order}`;
  const whereSql = `WHERE 1 = 1${q.token !== undefined ? " AND t.token = ? AND t.list = 'top'" : ''}${where}${extra}`;
  return {
    count: `SELECT COUNT(*) AS c FROM ${from} ${whereSql}`,
    page: `SELECT n.model_digest, n.settings_digest, n.kind, n.layer, n.idx, n.example_projection_overlap, n.probe_projection_overlap, n.projection_json, ${rankCols}
      FROM ${from} ${whereSql} ORDER BY ${order} LIMIT ? OFFSET ?`,
    params: [...tokenParams, ...p],
    pageParams: [q.limit ?? 50, q.offset ?? 0],
  };
}

/** A page row as a hit; `top` comes from the neuron's JSON (exact for every token string). */
export function rowToHit(r: Row): SearchHit {
  return {
    layer: Number(r.layer),
    index: Number(r.idx),
    kind: String(r.kind) as NeuronKind,
    rank: numOrNull(r.hit_rank),
    score: numOrNull(r.hit_score),
    scores: { example_projection_overlap: numOrNull(r.example_projection_overlap), probe_projection_overlap: numOrNull(r.probe_projection_overlap) },
    top: (JSON.parse(String(r.projection_json)) as { top: Array<{ token: string }> }).top.slice(0, 8).map((x) => x.token),
  };
}

/** Every scan with its progress (units and neurons written), oldest first. */
export const SCANS_SQL = `SELECT s.*,
    (SELECT COUNT(*) FROM units u WHERE u.model_digest = s.model_digest AND u.settings_digest = s.settings_digest) AS units_done,
    (SELECT COUNT(*) FROM neurons n WHERE n.model_digest = s.model_digest AND n.settings_digest = s.settings_digest) AS neurons_done
  FROM scans s ORDER BY s.created_at, s.model_digest, s.settings_digest`;

export function rowToScan(r: Row): ScanInfo {
  return {
    modelDigest: String(r.model_digest),
    settingsDigest: String(r.settings_digest),
    model: String(r.model),
    settings: JSON.parse(String(r.settings_json)) as ScanSettings,
    layers: JSON.parse(String(r.layers_json)) as number[],
    neurons: { start: Number(r.neuron_start), end: Number(r.neuron_end) },
    unitsTotal: Number(r.units_total),
    unitsDone: Number(r.units_done),
    neuronsDone: Number(r.neurons_done),
    createdAt: String(r.created_at),
  };
}

/** One neuron's row; several scans may hold it: the latest scan wins. */
export function neuronSql(layer: number, index: number, k: { kind?: NeuronKind } & Partial<ScanKey>): { sql: string; params: unknown[] } {
  const { where, params } = keyWhere('n', k);
  return {
    sql: `SELECT n.* FROM neurons n LEFT JOIN scans s ON s.model_digest = n.model_digest AND s.settings_digest = n.settings_digest
      WHERE n.layer = ? AND n.idx = ?${where} ORDER BY s.created_at DESC, n.settings_digest DESC LIMIT 1`,
    params: [layer, index, ...params],
  };
}
