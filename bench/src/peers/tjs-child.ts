/**
 * transformers.js peer: `node tjs-child.js <onnx dir> <threads>`; the bench's ONNX export of the
 * random checkpoint through @huggingface/transformers (fp32, onnxruntime-node CPU), local files only.
 * Line protocol (peer-protocol.ts): one JSON request per stdin line, one tagged result per stdout line.
 */
import path from 'node:path';
import { AutoModelForCausalLM, env, Tensor } from '@huggingface/transformers';
import { serve, type PeerRequest } from './protocol.js';

const [dir, threadsArg] = process.argv.slice(2);
env.allowRemoteModels = false; // never reach the network: local path only
env.allowLocalModels = true;
env.localModelPath = path.dirname(dir);
const threads = Number(threadsArg ?? 2);
const t0 = performance.now();
const model = await AutoModelForCausalLM.from_pretrained(path.basename(dir), {
  dtype: 'fp32',
  device: 'cpu',
  session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
});
const loadMs = performance.now() - t0;

const ids = (rows: number, p: number[]) => new Tensor('int64', BigInt64Array.from(Array.from({ length: rows }, () => p).flat().map(BigInt)), [rows, p.length]);
const mask = (rows: number, n: number) => new Tensor('int64', new BigInt64Array(rows * n).fill(1n), [rows, n]);

async function run(r: PeerRequest): Promise<{ ms: number; ids?: number[][] }> {
  const rows = r.workload === 'decode' ? 1 : r.rows;
  const gen = {
    input_ids: ids(rows, r.prompt),
    attention_mask: mask(rows, r.prompt.length),
    max_new_tokens: r.newTokens,
    min_new_tokens: r.newTokens,
    eos_token_id: null,
    do_sample: r.workload === 'sample',
    top_k: 50,
    temperature: 1,
  };
  const t = performance.now();
  const out = (await model.generate(gen as never)) as Tensor;
  const ms = performance.now() - t;
  const data = Array.from(out.data as BigInt64Array, Number);
  const width = out.dims[1];
  const rowsOut = Array.from({ length: out.dims[0] }, (_, i) => data.slice(i * width + r.prompt.length, (i + 1) * width));
  if (rowsOut.some((x) => x.length !== r.newTokens)) throw new Error(`transformers.js produced ${rowsOut.map((x) => x.length)} new tokens, expected ${r.newTokens}`);
  return { ms, ids: r.workload === 'decode' ? rowsOut : undefined };
}

await serve({ peer: 'transformers.js', engine: `onnxruntime-node (fp32, ${threads} threads)`, loadMs }, async (r) => {
  if (r.workload === 'peak') return { skipped: 'numpy only' };
  if (r.workload === 'logits') {
    const t = performance.now();
    const out = (await model({ input_ids: ids(1, r.prompt), attention_mask: mask(1, r.prompt.length) } as never)) as { logits: Tensor };
    const V = out.logits.dims[2];
    const all = out.logits.data as Float32Array;
    return { ms: performance.now() - t, logits: Array.from(all.subarray(all.length - V)) };
  }
  if (r.workload === 'lens') return { skipped: 'no lens API (transformers.js returns logits of the last layer only)' };
  return run(r);
});
