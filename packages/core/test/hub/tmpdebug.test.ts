import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { downloadModel } from '../../src/weights/hub.js';
const WEIGHTS = randomBytes(200_000);
test('dbg', async () => {
  const tmp = await mkdtemp(path.join(tmpdir(), 'sp-dbg-'));
  for (let i = 0; i < 3; i++) {
  const t0 = Date.now();
  const fake = (async (input: string | URL | Request) => {
    const url = String(input);
    console.log('fetch', url, Date.now() - t0);
    const file = url.split('/').pop()!;
    const body = file === 'config.json' ? Buffer.from('{}') : file === 'model.safetensors' ? WEIGHTS : undefined;
    if (!body) return new Response('nope', { status: 404 });
    return new Response(body, { status: 200, headers: { 'content-length': String(body.length) } });
  }) as typeof fetch;
  await downloadModel('gpt2', { dest: path.join(tmp, String(i)), hubUrl: 'https://hub.example', fetchImpl: fake, onProgress: (f, d) => console.log(f, d, Date.now() - t0) });
  console.log('done', Date.now() - t0);
  }
});
