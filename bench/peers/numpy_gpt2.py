"""numpy reference peer for `pnpm bench` (peers section): GPT-2 with a KV cache in plain numpy,
reading the bench's random model.safetensors directly. `python3 numpy_gpt2.py <checkpoint dir>`;
speaks the bench's line protocol (bench/src/peers/protocol.ts): one JSON request per stdin line,
one `@@peer <json>` reply per stdout line. Threads: $OPENBLAS_NUM_THREADS (set by the bench)."""
import json
import math
import os
import struct
import sys
import time

import numpy as np

TAG = '@@peer '


def say(x):
    sys.stdout.write(TAG + json.dumps(x) + '\n')
    sys.stdout.flush()


def load(d):
    path = os.path.join(d, 'model.safetensors')
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        head = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode='r')
    w = {}
    for k, v in head.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        # a copy: resident float32 weights, as the other peers hold them
        w[k] = np.array(raw[8 + n + a:8 + n + b].view(np.float32).reshape(v['shape']))
    cfg = json.load(open(os.path.join(d, 'config.json')))
    return w, cfg


def layer_norm(x, g, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b


def gelu_new(x):
    return 0.5 * x * (1 + np.tanh(np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x * x * x)))


class GPT2:
    def __init__(self, d):
        self.w, c = load(d)
        self.L, self.H, self.d, self.eps = c['n_layer'], c['n_head'], c['n_embd'], c['layer_norm_epsilon']
        self.wte = self.w['wte.weight']
        self.wteT = np.ascontiguousarray(self.wte.T)  # [d, V]: the unembedding as one GEMM operand

    def forward(self, ids, cache, resid=None):
        """ids [b, s] (int), cache: list of (k, v) [b, H, past, hd] or None; returns hidden [b, s, d]."""
        w, H, d = self.w, self.H, self.d
        hd = d // H
        b, s = ids.shape
        past = 0 if cache[0] is None else cache[0][0].shape[2]
        x = self.wte[ids] + w['wpe.weight'][past:past + s]
        if resid is not None:
            resid.append(x)
        causal = np.triu(np.full((s, past + s), -1e9, np.float32), past + 1)
        for i in range(self.L):
            p = 'h.%d.' % i
            h = layer_norm(x, w[p + 'ln_1.weight'], w[p + 'ln_1.bias'], self.eps)
            qkv = h @ w[p + 'attn.c_attn.weight'] + w[p + 'attn.c_attn.bias']
            q, k, v = [t.reshape(b, s, H, hd).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, axis=-1)]
            if cache[i] is not None:
                k = np.concatenate([cache[i][0], k], axis=2)
                v = np.concatenate([cache[i][1], v], axis=2)
            cache[i] = (k, v)
            a = q @ k.transpose(0, 1, 3, 2) * np.float32(1 / math.sqrt(hd)) + causal
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            o = (a @ v).transpose(0, 2, 1, 3).reshape(b, s, d)
            x = x + (o @ w[p + 'attn.c_proj.weight'] + w[p + 'attn.c_proj.bias'])
            h = layer_norm(x, w[p + 'ln_2.weight'], w[p + 'ln_2.bias'], self.eps)
            x = x + (gelu_new(h @ w[p + 'mlp.c_fc.weight'] + w[p + 'mlp.c_fc.bias']) @ w[p + 'mlp.c_proj.weight'] + w[p + 'mlp.c_proj.bias'])
            if resid is not None:
                resid.append(x)
        return x

    def logits(self, x):
        return layer_norm(x, self.w['ln_f.weight'], self.w['ln_f.bias'], self.eps) @ self.wteT

    def generate(self, prompt, rows, n, sample, rng):
        cache = [None] * self.L
        ids = np.array([prompt] * rows, dtype=np.int64)
        out = []
        x = self.forward(ids, cache)[:, -1:]
        for t in range(n):
            l = self.logits(x)[:, -1]  # [rows, V]
            if sample:  # top-k 50, temperature 1 (HF's defaults, as the other peers)
                top = np.argpartition(-l, 50, axis=-1)[:, :50]
                lt = np.take_along_axis(l, top, -1).astype(np.float64)
                p = np.exp(lt - lt.max(-1, keepdims=True))
                p /= p.sum(-1, keepdims=True)
                nxt = np.array([top[r, rng.choice(50, p=p[r])] for r in range(rows)])
            else:
                nxt = l.argmax(-1)
            out.append(nxt)
            if t + 1 < n:
                x = self.forward(nxt[:, None], cache)
        return np.stack(out, 1).tolist()

    def lens(self, prompt, topk):
        """Logit lens: every resid (embed + after each block) → ln_f → unembedding, top-k, float64 log-softmax and entropy."""
        resid = []
        self.forward(np.array([prompt], dtype=np.int64), [None] * self.L, resid)
        xs = np.stack([r[0] for r in resid], 1).reshape(-1, self.d)  # [s·R, d], position-major
        l = self.logits(xs)
        top = np.argpartition(-l, topk, axis=-1)[:, :topk]
        order = np.argsort(-np.take_along_axis(l, top, -1), axis=-1, kind='stable')
        top = np.take_along_axis(top, order, -1)
        l64 = l.astype(np.float64)
        z = l64 - l64.max(-1, keepdims=True)
        e = np.exp(z)
        S = e.sum(-1)
        _entropy = np.log(S) - (e * z).sum(-1) / S
        return top[:, 0].tolist()


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    t0 = time.perf_counter()
    m = GPT2(sys.argv[1])
    threads = os.environ.get('OPENBLAS_NUM_THREADS', '?')
    say({'ready': True, 'peer': 'numpy', 'engine': 'numpy %s (%s threads)' % (np.__version__, threads), 'loadMs': (time.perf_counter() - t0) * 1000})
    for line in sys.stdin:
        if not line.strip():
            continue
        r = json.loads(line)
        try:
            t = time.perf_counter()
            if r['workload'] == 'logits':
                x = m.forward(np.array([r['prompt']], dtype=np.int64), [None] * m.L)
                say({'ms': (time.perf_counter() - t) * 1000, 'logits': m.logits(x[:, -1])[0].tolist()})
            elif r['workload'] == 'peak':
                # the machine's sgemm peak with this BLAS: [n, n]·[n, n] float32
                n = 2048
                a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
                a @ a
                best = min(timed(lambda: a @ a) for _ in range(5))
                say({'ms': best * 1000, 'gflops': 2 * n ** 3 / best / 1e9})
            elif r['workload'] == 'lens':
                top1 = m.lens(r['prompt'], r.get('topk', 10))
                say({'ms': (time.perf_counter() - t) * 1000, 'top1': top1})
            else:
                dec = r['workload'] == 'decode'
                ids = m.generate(r['prompt'], 1 if dec else r['rows'], r['newTokens'], not dec, np.random.default_rng(r['seed']))
                say({'ms': (time.perf_counter() - t) * 1000, 'ids': ids if dec else None})
        except Exception as e:  # one line back to the bench, never a traceback
            say({'error': '%s: %s' % (type(e).__name__, str(e).splitlines()[0] if str(e) else '')})


if __name__ == '__main__':
    main()
