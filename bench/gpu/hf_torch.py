# The GPU peer for bench/src/webgpu.ts (node bench/dist/webgpu.js): Hugging Face transformers (PyTorch, CUDA, float32) on the
# same random checkpoint, the same workloads; also writes DIR/ref_ids.json and DIR/ref_logits.f64, a
# float64 forward of the checkpoint that webgpu.js compares sp's logits with.
#   python3 bench/gpu/hf_torch.py DIR
import json, os, sys, time

import torch
from transformers import GPT2LMHeadModel

d = sys.argv[1]
rounds = int(os.environ.get("ROUNDS", "3"))
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cuda.matmul.allow_tf32 = False  # plain fp32, as sp and transformers.js compute
torch.backends.cudnn.allow_tf32 = False

ref = GPT2LMHeadModel.from_pretrained(d, dtype=torch.float64).to(dev).eval()
V = ref.config.vocab_size
ids = [(i * 7919 + 11) % V for i in range(16)]
with torch.no_grad():
    logits = ref(torch.tensor([ids], device=dev)).logits[0].double().cpu().numpy()
logits.tofile(os.path.join(d, "ref_logits.f64"))
json.dump(ids, open(os.path.join(d, "ref_ids.json"), "w"))
del ref

model = GPT2LMHeadModel.from_pretrained(d, dtype=torch.float32).to(dev).eval()
print("torch", torch.__version__, "device", torch.cuda.get_device_name() if dev == "cuda" else "cpu")


def prompt(n, r):
    return torch.tensor([[(i * 7919 + r * 104729 + 11) % V for i in range(n)]], device=dev)


def timed(fn):
    if dev == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if dev == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1000


def lens(x):
    out = model(x, output_hidden_states=True)
    hs = out.hidden_states  # 13: embeddings, blocks 1..11 (before ln_f), block 12 (after ln_f)
    rows = torch.stack([model.transformer.ln_f(h) for h in hs[:-1]] + [hs[-1]])  # [13, 1, 64, d]
    p = torch.softmax(model.lm_head(rows), -1)
    top = torch.topk(p, 5, -1)
    ent = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)
    return top.values.cpu(), top.indices.cpu(), ent.cpu()


dec, samp, ln = [], [], []
with torch.no_grad():
    for r in range(-1, rounds):
        a = timed(lambda: model.generate(prompt(16, r + 2), max_new_tokens=64, min_new_tokens=64, do_sample=False, pad_token_id=50256))
        b = timed(lambda: model.generate(prompt(12, r + 2), max_new_tokens=50, min_new_tokens=50, do_sample=True, num_return_sequences=8, pad_token_id=50256))
        c = timed(lambda: lens(prompt(64, r + 2)))
        if r >= 0:
            dec.append(64000 / a)
            samp.append(400000 / b)
            ln.append(c)
        print(f"round {r}: decode {64000 / a:.1f} tok/s, sampling {400000 / b:.1f} tok/s, lens {c:.0f} ms", flush=True)


def fmt(xs):
    s = sorted(xs)
    return f"{s[len(s) // 2]:.1f} ({s[0]:.1f}–{s[-1]:.1f})"


print(f"hf torch {dev}: decode b1 {fmt(dec)} tok/s | 8×50 sampling {fmt(samp)} tok/s | lens 64×13 {fmt(ln)} ms")
