/** A tiny stand-in for the Hugging Face hub on 127.0.0.1, serving `/<repo>/resolve/<rev>/<file>`. */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export type Behaviour =
  /** 200 with content-length and (for LFS files) x-linked-etag sha256. */
  | 'ok'
  /** Like ok, but x-linked-etag is the sha256 of something else. */
  | 'bad-checksum'
  /** Sends half the bytes of a declared content-length, then destroys the socket. */
  | 'truncate'
  /** Chunked (no content-length), x-linked-size = full size, but only half the bytes, ending cleanly. */
  | 'short-chunked'
  /** 302 to /cdn/... carrying x-linked-etag / x-linked-size; the CDN answers with a plain etag. */
  | 'redirect'
  /** Like redirect, but the 302's x-linked-etag is the sha256 of something else. */
  | 'redirect-bad-checksum'
  /** Never answers. */
  | 'hang'
  | 404
  | 401
  | 500;

export interface FakeFile {
  body: Buffer;
  behaviour?: Behaviour;
  /** Served as an LFS file (x-linked-etag sha256). Default true for *.safetensors. */
  lfs?: boolean;
}

export interface FakeHub {
  url: string;
  /** Paths requested, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** `files` maps `<repo>/resolve/<rev>/<file>` (no leading slash) to what to serve. */
export async function startFakeHub(files: Record<string, FakeFile>): Promise<FakeHub> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(url.pathname);
    const cdn = url.pathname.startsWith('/cdn/');
    const key = decodeURIComponent(url.pathname.replace(/^\/(cdn\/)?/, ''));
    const f = files[key];
    if (!f) {
      res.writeHead(404, { 'content-type': 'text/plain', 'x-error-code': 'EntryNotFound' });
      res.end('Entry not found');
      return;
    }
    const behaviour = f.behaviour ?? 'ok';
    const lfs = f.lfs ?? key.endsWith('.safetensors');
    const body = f.body;
    const digest = sha256(body);
    if (typeof behaviour === 'number') {
      res.writeHead(behaviour, { 'content-type': 'text/plain' });
      res.end(`status ${behaviour}`);
      return;
    }
    if (behaviour === 'hang') return; // never respond
    if ((behaviour === 'redirect' || behaviour === 'redirect-bad-checksum') && !cdn) {
      res.writeHead(302, {
        location: `/cdn/${key}?signature=abc`,
        'x-linked-etag': `"${behaviour === 'redirect' ? digest : sha256(Buffer.from('other'))}"`,
        'x-linked-size': String(body.length),
        'content-length': '0',
      });
      res.end();
      return;
    }
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (cdn) headers.etag = '"0123456789abcdef0123456789abcdef-1"'; // S3-style, not a sha256
    else if (lfs) headers['x-linked-etag'] = `"${behaviour === 'bad-checksum' ? sha256(Buffer.from('something else')) : digest}"`;
    else headers.etag = `W/"${createHash('sha1').update(body).digest('hex')}"`; // git blob id, not a sha256
    if (behaviour === 'short-chunked') {
      headers['x-linked-size'] = String(body.length);
      res.writeHead(200, headers); // no content-length -> chunked
      res.end(body.subarray(0, body.length >> 1));
      return;
    }
    headers['content-length'] = String(body.length);
    res.writeHead(200, headers);
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
