/**
 * The peers' line protocol: the parent writes one JSON PeerRequest per stdin line; a peer answers
 * each with one stdout line `@@peer <json>` (a PeerReply), after a first `@@peer {"ready":…}` line.
 * Peers stay loaded between requests so rounds can interleave (A B C A B C …) without reloads.
 * The Python peer (bench/peers/numpy_gpt2.py) speaks the same protocol.
 */
import readline from 'node:readline';

export const PEER_TAG = '@@peer ';

export interface PeerRequest {
  /** logits: the last position's logits of `prompt` (the export cross-check); peak: numpy's sgemm GFLOP/s. */
  workload: 'decode' | 'sample' | 'lens' | 'logits' | 'peak';
  prompt: number[];
  /** decode: 1; sample: 8 rows of the same prompt. */
  rows: number;
  newTokens: number;
  /** lens: top-k per cell. */
  topk?: number;
  seed: number;
}

export interface PeerReply {
  ms?: number;
  ids?: number[][];
  /** lens: top-1 id per (position, row), for the cross-check. */
  top1?: number[];
  /** logits: the last position's, all V. */
  logits?: number[];
  gflops?: number;
  skipped?: string;
  error?: string;
}

export interface PeerInfo {
  peer: string;
  engine: string;
  loadMs: number;
}

export async function serve(info: PeerInfo, handle: (r: PeerRequest) => Promise<PeerReply> | PeerReply): Promise<void> {
  const say = (x: object) => process.stdout.write(PEER_TAG + JSON.stringify(x) + '\n');
  say({ ready: true, ...info });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    try {
      say(await handle(JSON.parse(line) as PeerRequest));
    } catch (e) {
      say({ error: (e as Error).message.split('\n')[0] });
    }
  }
}
