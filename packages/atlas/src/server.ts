/**
 * `sp atlas serve`: a Fastify app over an AtlasStore — the JSON API under /api/ and the browsing
 * page (static files from ../page, Vega / Vega-Lite / vega-embed from node_modules). Query strings
 * are checked by JSON schemas (Fastify's Ajv): a bad parameter is a 400 `{error}`, an unknown neuron
 * a 404 `{error}`; nothing a client sends can give a 500. A Content-Security-Policy of
 * `default-src 'self'` keeps the page from reaching anything but this server.
 *
 * Routes (documented in docs/atlas.md, "Browsing"):
 *   GET /api/scans                                  ScanInfo[]
 *   GET /api/search?token&text&layer&kind&min_example_overlap&min_probe_overlap&sort&limit&offset&model_digest&settings_digest
 *                                                   {total, hits: SearchHit[]}
 *   GET /api/neuron/:layer/:index?kind&model_digest&settings_digest
 *                                                   NeuronRecord (= `sp atlas show --json`)
 *   GET /api/neuron/:layer/:index/view?…same…       {scan, reprobe, charts}: the scan holding it, the
 *                                                   `sp probe` command line, Vega-Lite projection specs
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { SpError, listPrompts } from '@sp/core';
import { projectionSpec } from '@sp/report';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { AtlasStore, NeuronKind, NeuronRecord, ScanInfo, ScanKey, SearchQuery } from './types.js';
import { PROJECTION_LISTS } from './schema.js';

/** The page's files: ../page from src/ (tests) and from dist/ (the built package) alike. */
export const PAGE_DIR = fileURLToPath(new URL('../page/', import.meta.url));

const require = createRequire(import.meta.url);

/** Browser builds served as /vendor/NAME (their exports maps hide build/, so resolve the package folder). */
function vendorFiles(): Record<string, string> {
  const dirOf = (pkg: string) => {
    let d = path.dirname(require.resolve(pkg));
    while (!fs.existsSync(path.join(d, 'package.json'))) d = path.dirname(d);
    return d;
  };
  return {
    'vega.min.js': path.join(dirOf('vega'), 'build', 'vega.min.js'),
    'vega-lite.min.js': path.join(dirOf('vega-lite'), 'build', 'vega-lite.min.js'),
    'vega-embed.min.js': path.join(dirOf('vega-embed'), 'build', 'vega-embed.min.js'),
  };
}

const CSP = "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const HEX64 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const KIND = { type: 'string', enum: ['key', 'value'] } as const;
const scanFilter = { kind: KIND, model_digest: HEX64, settings_digest: HEX64 } as const;
const neuronParams = {
  type: 'object',
  required: ['layer', 'index'],
  properties: { layer: { type: 'integer', minimum: 0, maximum: 1_000_000 }, index: { type: 'integer', minimum: 0, maximum: 100_000_000 } },
} as const;
const neuronQuery = { type: 'object', additionalProperties: false, properties: scanFilter } as const;
const searchQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    token: { type: 'string', minLength: 1, maxLength: 1000 },
    text: { type: 'string', minLength: 1, maxLength: 1000 },
    layer: { type: 'integer', minimum: 0, maximum: 1_000_000 },
    min_example_overlap: { type: 'number', minimum: 0, maximum: 1 },
    min_probe_overlap: { type: 'number', minimum: 0, maximum: 1 },
    sort: { type: 'string', enum: ['rank', 'layer', 'example_projection_overlap', 'probe_projection_overlap'] },
    limit: { type: 'integer', minimum: 1, maximum: 500 },
    offset: { type: 'integer', minimum: 0, maximum: 1_000_000_000 },
    ...scanFilter,
  },
} as const;

interface ScanFilterQ {
  kind?: NeuronKind;
  model_digest?: string;
  settings_digest?: string;
}
interface SearchQ extends ScanFilterQ {
  token?: string;
  text?: string;
  layer?: number;
  min_example_overlap?: number;
  min_probe_overlap?: number;
  sort?: SearchQuery['sort'];
  limit?: number;
  offset?: number;
}
interface NeuronP {
  layer: number;
  index: number;
}

const filterOf = (q: ScanFilterQ): { kind?: NeuronKind } & Partial<ScanKey> => ({
  ...(q.kind !== undefined && { kind: q.kind }),
  ...(q.model_digest !== undefined && { modelDigest: q.model_digest }),
  ...(q.settings_digest !== undefined && { settingsDigest: q.settings_digest }),
});

/** Single quotes for a POSIX shell unless the word is plainly safe. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The `sp probe` command line that re-probes one neuron of a scan with the scan's settings. */
export function reprobeCommand(scan: ScanInfo, r: Pick<NeuronRecord, 'layer' | 'index' | 'kind'>): string {
  const s = scan.settings;
  // The library name when it still names this exact text here, else the template itself.
  let library = false;
  try {
    library = listPrompts().some((p) => p.name === s.promptName && p.template === s.prompt);
  } catch {
    library = false;
  }
  const args = ['sp', 'probe', '--model', scan.model, '--neuron', `${r.kind}:${r.layer},${r.index}`, ...(library ? ['--prompt-name', s.promptName] : ['--prompt', s.prompt])];
  args.push('--samples', String(Math.max(1, s.samples)), '--max-new-tokens', String(s.maxNewTokens), '--seed', String(s.seed));
  args.push('--temperature', String(s.temperature), '--top-k', String(s.topK), '--top-p', String(s.topP), '--repetition-penalty', String(s.repetitionPenalty));
  args.push('--top', String(s.projectionTop));
  return args.map(shellQuote).join(' ');
}

export interface AtlasServerOptions {
  /** Shown in the page's header (the store's path). */
  title?: string;
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** One line naming the parameter: `layer must be integer`, `unknown parameter "lyer"`, `sort must be one of rank, layer, …`. */
function validationMessage(e: FastifyError): string {
  const v = (e.validation as unknown as AjvError[] | undefined)?.[0];
  if (!v) return e.message;
  const name = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
  if (v.keyword === 'additionalProperties') return `unknown parameter "${String(v.params.additionalProperty)}"`;
  if (v.keyword === 'enum') return `${name} must be one of ${(v.params.allowedValues as string[]).join(', ')}`;
  return `${name || (e as { validationContext?: string }).validationContext || 'request'} ${v.message ?? 'is invalid'}`;
}

/** Ajv coerces "1e400" to Infinity and lets it through `maximum`: every number must be finite. */
function finite(where: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(where)) {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new SpError('BAD_INPUT', `bad parameter: ${k} must be a finite number`);
  }
}

/** Status for an error: client mistakes 4xx (schema, SpError input codes, unknown routes), the rest 500. */
function statusOf(e: FastifyError | SpError): number {
  if ((e as FastifyError).validation) return 400;
  if (SpError.is(e)) return e.code === 'NOT_FOUND' ? 404 : e.code === 'BAD_INPUT' || e.code === 'OUT_OF_RANGE' ? 400 : 500;
  const s = (e as FastifyError).statusCode;
  return typeof s === 'number' && s >= 400 && s < 600 ? s : 500;
}

/** The app (not listening): `app.inject()` in tests, `serveAtlas` to listen. The caller closes the store. */
export async function atlasApp(store: AtlasStore, opts: AtlasServerOptions = {}): Promise<FastifyInstance> {
  // removeAdditional off: a misspelt parameter (`?lyer=3`) is a 400, not silently ignored.
  const app = Fastify({ logger: false, ajv: { customOptions: { removeAdditional: false, coerceTypes: true, allErrors: false } } });
  const vendor = vendorFiles();

  app.addHook('onSend', async (_req, reply) => {
    reply.header('Content-Security-Policy', CSP);
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
  });

  app.setErrorHandler((e: FastifyError, _req, reply) => {
    const status = statusOf(e);
    const msg = (e as FastifyError).validation ? `bad parameter: ${validationMessage(e)}` : status === 500 ? 'internal error' : e.message.split('\n')[0];
    if (status === 500 && process.env.SP_VERBOSE) process.stderr.write(`${e.stack ?? e.message}\n`);
    void reply.status(status).type('application/json; charset=utf-8').send({ error: msg });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  /** The scan that holds the neuron: the latest matching scan first, as store.neuron() picks. */
  async function locate(p: NeuronP, q: ScanFilterQ): Promise<{ record: NeuronRecord; scan: ScanInfo | null }> {
    finite({ ...p });
    const f = filterOf(q);
    const record = await store.neuron(p.layer, p.index, f);
    if (!record) throw new SpError('NOT_FOUND', `no ${q.kind ?? 'key or value'} neuron L${p.layer} #${p.index} in this store`);
    const scans = (await store.scans())
      .filter((s) => s.settings.kind === record.kind && (!f.modelDigest || s.modelDigest === f.modelDigest) && (!f.settingsDigest || s.settingsDigest === f.settingsDigest))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.settingsDigest.localeCompare(a.settingsDigest));
    for (const s of scans) {
      const r = await store.neuron(p.layer, p.index, { kind: record.kind, modelDigest: s.modelDigest, settingsDigest: s.settingsDigest });
      if (r) return { record, scan: s };
    }
    return { record, scan: null };
  }

  app.get('/api/info', async () => ({ title: opts.title ?? 'atlas' }));
  app.get('/api/scans', async () => store.scans());

  app.get<{ Querystring: SearchQ }>('/api/search', { schema: { querystring: searchQuery } }, async (req) => {
    const q = req.query;
    finite({ ...q });
    return store.search({
      ...filterOf(q),
      ...(q.token !== undefined && { token: q.token }),
      ...(q.text !== undefined && { text: q.text }),
      ...(q.layer !== undefined && { layer: q.layer }),
      ...(q.min_example_overlap !== undefined && { minExampleOverlap: q.min_example_overlap }),
      ...(q.min_probe_overlap !== undefined && { minProbeOverlap: q.min_probe_overlap }),
      ...(q.sort !== undefined && { sort: q.sort }),
      limit: q.limit ?? 50,
      offset: q.offset ?? 0,
    });
  });

  app.get<{ Params: NeuronP; Querystring: ScanFilterQ }>('/api/neuron/:layer/:index', { schema: { params: neuronParams, querystring: neuronQuery } }, async (req) => {
    return (await locate(req.params, req.query)).record;
  });

  app.get<{ Params: NeuronP; Querystring: ScanFilterQ }>('/api/neuron/:layer/:index/view', { schema: { params: neuronParams, querystring: neuronQuery } }, async (req) => {
    const { record, scan } = await locate(req.params, req.query);
    const what = record.kind === 'key' ? 'FF key' : 'FF value';
    // The report's projection bar chart (the same Vega-Lite spec as `sp probe --html`), one per list.
    const charts = Object.fromEntries(PROJECTION_LISTS.map((list) => {
      const norm = list.endsWith('_normalized');
      const title = `${what} L${record.layer} #${record.index}: ${list.startsWith('top') ? 'top' : 'bottom'} tokens${norm ? ' (normalised)' : ''}`;
      const values = record.projection[list].slice(0, 20).map((t) => ({ token: t.token, value: t.score }));
      return [list, projectionSpec(values, norm ? 'v·E / ‖E‖' : 'v·E', { title })];
    }));
    return {
      scan: scan && { modelDigest: scan.modelDigest, settingsDigest: scan.settingsDigest, model: scan.model, settings: scan.settings, createdAt: scan.createdAt },
      reprobe: scan ? reprobeCommand(scan, record) : null,
      charts,
    };
  });

  app.get('/api/*', async (req) => {
    throw new SpError('NOT_FOUND', `no API route ${req.url.split('?')[0]}`);
  });

  app.get<{ Params: { name: string } }>('/vendor/:name', async (req, reply) => {
    const file = vendor[req.params.name];
    if (!file) throw new SpError('NOT_FOUND', `no file /vendor/${req.params.name}`);
    return reply.type('text/javascript; charset=utf-8').header('Cache-Control', 'public, max-age=3600').send(fs.createReadStream(file));
  });

  await app.register(fastifyStatic, { root: PAGE_DIR, prefix: '/', index: ['index.html'], wildcard: false });
  return app;
}

export interface ServeOptions extends AtlasServerOptions {
  host?: string;
  port?: number;
}

/** Listen on host:port (default 127.0.0.1:8080; port 0 = any free port). A busy port is one SpError line. */
export async function serveAtlas(store: AtlasStore, opts: ServeOptions = {}): Promise<{ app: FastifyInstance; url: string; close: () => Promise<void> }> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 8080;
  const app = await atlasApp(store, opts);
  try {
    await app.listen({ host, port });
  } catch (e) {
    await app.close().catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new SpError('BAD_INPUT', `port ${port} on ${host} is already in use (pick another with --port)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') throw new SpError('BAD_INPUT', `cannot bind ${host}: no such local address`);
    if (code === 'EACCES') throw new SpError('BAD_INPUT', `no permission to bind ${host}:${port} (ports below 1024 need privileges)`);
    throw e;
  }
  const addr = app.server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { app, url: `http://${shown}:${bound}/`, close: () => app.close() };
}
