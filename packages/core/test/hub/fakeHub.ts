/**
 * A tiny stand-in for the Hugging Face hub on 127.0.0.1, answering in the real hub's HTTP shapes:
 *   GET /api/models/<repo>/revision/<rev>   model info JSON with `sha` (the commit)
 *   GET /api/models/<repo>/tree/<rev>       [{ type, oid, size, path, lfs?: { oid, size, pointerSize } }]
 *   GET /<repo>/resolve/<rev>/<file>        small files: 200 with ETag (git blob id) and X-Repo-Commit;
 *                                           LFS files: 302 to /cdn/... with X-Linked-Etag (sha256),
 *                                           X-Linked-Size, X-Repo-Commit; the CDN answers with the bytes
 *                                           and an S3-style etag.
 * Gated repos answer 401 on resolve without a token and 403 with a wrong one; private repos 401 everywhere.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** git's blob id: sha1("blob <size>\0" + bytes), what the hub reports as `oid` and ETag of small files. */
export const gitOid = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
export const commitOf = (repo: string, ref: string): string => createHash('sha1').update(`${repo}@${ref}`).digest('hex');

export type Behaviour =
  /** The bytes, with content-length (LFS files via the 302 to the CDN). */
  | 'ok'
  /** Same length, one byte flipped: the announced sha256 / git blob id does not match. */
  | 'bad-checksum'
  /** Sends half the bytes of a declared content-length, then destroys the socket. */
  | 'truncate'
  /** Chunked (no content-length), only half the bytes, ending cleanly. */
  | 'short-chunked'
  /** Never answers. */
  | 'hang'
  | 404
  | 401
  | 500;

export interface FakeFile {
  body: Buffer;
  behaviour?: Behaviour;
  /** Stored with LFS (sha256 in the listing, served through the CDN redirect). Default true for *.safetensors / *.bin. */
  lfs?: boolean;
}

export interface FakeRepo {
  /** ref name (`main`, `v1`, `refs/pr/1`) -> files at that ref's commit (commitOf(repo, ref)). */
  revisions: Record<string, Record<string, FakeFile>>;
  /** Resolve needs `Authorization: Bearer <token>`: 401 without, 403 with another token. */
  gated?: boolean;
  /** Like gated, and the API answers 401 too. */
  private?: boolean;
  /** The token that has access (default TOKEN). */
  token?: string;
  /** How the model-info endpoint answers (default ok). */
  api?: 'hang' | 500;
}

export const TOKEN = 'hf_fake_token_with_access';

export interface FakeHub {
  url: string;
  /** `METHOD path` of every request, in order. */
  requests: string[];
  /** Authorization headers seen, in request order ('' when none). */
  auth: string[];
  close(): Promise<void>;
}

/** One revision named `main` (the common case). */
export const mainOnly = (files: Record<string, FakeFile>, extra: Omit<FakeRepo, 'revisions'> = {}): FakeRepo => ({ revisions: { main: files }, ...extra });

export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const requests: string[] = [];
  const auth: string[] = [];
  const isLfs = (name: string, f: FakeFile): boolean => f.lfs ?? /\.(safetensors|bin)$/.test(name);
  const lookup = (repo: string, rev: string): { commit: string; files: Record<string, FakeFile> } | undefined => {
    const r = repos[repo];
    if (!r) return undefined;
    for (const [ref, files] of Object.entries(r.revisions)) if (rev === ref || rev === commitOf(repo, ref)) return { commit: commitOf(repo, ref), files };
    return undefined;
  };
  const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  };
  const denied = (req: http.IncomingMessage, r: FakeRepo): number => {
    const a = req.headers.authorization ?? '';
    if (!a) return 401;
    return a === `Bearer ${r.token ?? TOKEN}` ? 0 : 403;
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}`);
    auth.push(req.headers.authorization ?? '');
    const p = decodeURIComponent(url.pathname);

    // --- API
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/(.+)$/.exec(p);
    if (m) {
      const [, repo, kind, rev] = m;
      const r = repos[repo!];
      if (!r) return json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
      if (r.private && denied(req, r)) return json(res, 401, { error: 'Invalid username or password.' }, { 'x-error-code': 'RepoNotFound' });
      if (kind === 'revision' && r.api === 'hang') return;
      if (kind === 'revision' && r.api === 500) return json(res, 500, { error: 'Internal Error' });
      const at = lookup(repo!, rev!);
      if (!at) return json(res, 404, { error: `Invalid rev id: ${rev}` }, { 'x-error-code': 'RevisionNotFound' });
      if (kind === 'revision') {
        return json(res, 200, {
          _id: 'fake' + at.commit.slice(0, 8),
          id: repo,
          sha: at.commit,
          private: Boolean(r.private),
          gated: r.gated ? 'manual' : false,
          downloads: 0,
          likes: 0,
          lastModified: '2024-01-01T00:00:00.000Z',
          siblings: Object.keys(at.files).map((rfilename) => ({ rfilename })),
        });
      }
      return json(
        res,
        200,
        Object.entries(at.files).map(([path, f]) => {
          if (!isLfs(path, f)) return { type: 'file', oid: gitOid(f.body), size: f.body.length, path };
          const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(f.body)}\nsize ${f.body.length}\n`);
          return { type: 'file', oid: gitOid(pointer), size: f.body.length, path, lfs: { oid: sha256(f.body), size: f.body.length, pointerSize: pointer.length } };
        }),
      );
    }

    // --- resolve (and its CDN)
    const cdn = p.startsWith('/cdn/');
    m = /^\/(?:cdn\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p);
    const r = m ? repos[m[1]!] : undefined;
    const at = m && r ? lookup(m[1]!, m[2]!) : undefined;
    if (!m || !r || !at) return json(res, 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
    if (!cdn && (r.gated || r.private)) {
      const d = denied(req, r);
      if (d) return json(res, d, { error: d === 401 ? 'Access to model is restricted. You must be authenticated.' : 'Access to this model is restricted: accept the conditions.' }, { 'x-error-code': 'GatedRepo' });
    }
    const file = m[3]!;
    const f = at.files[file];
    if (!f) {
      res.writeHead(404, { 'content-type': 'text/plain', 'x-error-code': 'EntryNotFound' });
      res.end('Entry not found');
      return;
    }
    const behaviour = f.behaviour ?? 'ok';
    if (typeof behaviour === 'number') {
      res.writeHead(behaviour, { 'content-type': 'text/plain' });
      res.end(`status ${behaviour}`);
      return;
    }
    const lfs = isLfs(file, f);
    const common = { 'x-repo-commit': at.commit };
    if (lfs && !cdn) {
      res.writeHead(302, {
        ...common,
        location: `/cdn/${m[1]}/resolve/${at.commit}/${file}?X-Amz-Signature=abc`,
        etag: `"${sha256(f.body)}"`,
        'x-linked-etag': `"${sha256(f.body)}"`,
        'x-linked-size': String(f.body.length),
        'content-length': '0',
      });
      res.end();
      return;
    }
    if (behaviour === 'hang') return; // never respond
    let body = f.body;
    if (behaviour === 'bad-checksum') {
      body = Buffer.from(f.body);
      body[body.length >> 1] ^= 0xff;
    }
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (cdn) headers.etag = '"0123456789abcdef0123456789abcdef-1"'; // S3-style, not a sha256
    else Object.assign(headers, common, { etag: `"${gitOid(f.body)}"` });
    if (behaviour === 'short-chunked') {
      res.writeHead(200, headers); // no content-length -> chunked
      res.end(body.subarray(0, body.length >> 1));
      return;
    }
    headers['content-length'] = String(body.length);
    res.writeHead(200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (behaviour === 'truncate') {
      res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    // Send in a few chunks so progress callbacks fire more than once.
    const step = Math.max(1, Math.ceil(body.length / 4));
    let off = 0;
    const pump = (): void => {
      if (off >= body.length) {
        res.end();
        return;
      }
      const chunk = body.subarray(off, off + step);
      off += step;
      res.write(chunk, () => setTimeout(pump, 5));
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    auth,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port that was just free and is now closed (connection refused). */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
