"""PyTorch peer: nanoGPT's model and training step at the CPU preset's shape, tokens/s.

A reference point outside TensorFlow: nanoGPT's GPT (pre-norm blocks, fused QKV,
`scaled_dot_product_attention`, exact GELU, no biases, tied head, GPT-2 init) at
`shakespeare_char_cpu`'s shape (4 layers, 4 heads, 128 wide, context 64, batch 12),
trained with AdamW (betas 0.9/0.99, weight decay 0.1 on matrices) and global-norm
clipping 1.0, as nanoGPT's CPU run does, on random windows of the same corpus.

Variants, alternated round by round (medians after warm-up): eager float32 (nanoGPT's
documented CPU run, `--compile=False`) and eager with bfloat16 autocast.

PyTorch is not a dependency of lm_keras: without it this script says so and exits 0.
Run it with any Python that has torch, e.g.

    flock /tmp/lm_keras_heavy.lock /path/to/torch-venv/bin/python -m experiments.torch_peer
"""

import math
import os

from benchmarks import common


def build(torch, vocab, layers=4, heads=4, width=128, context=64):
    nn, F = torch.nn, torch.nn.functional  # noqa: N806 (PyTorch's usual name)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(width, bias=False)
            self.qkv = nn.Linear(width, 3 * width, bias=False)
            self.proj = nn.Linear(width, width, bias=False)
            self.ln2 = nn.LayerNorm(width, bias=False)
            self.fc = nn.Linear(width, 4 * width, bias=False)
            self.out = nn.Linear(4 * width, width, bias=False)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(width, dim=2)
            q, k, v = [z.view(b, t, heads, width // heads).transpose(1, 2) for z in (q, k, v)]  # (B, H, T, D)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, width)
            x = x + self.proj(y)
            return x + self.out(F.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, width)
            self.wpe = nn.Embedding(context, width)
            self.blocks = nn.ModuleList([Block() for _ in range(layers)])
            self.lnf = nn.LayerNorm(width, bias=False)
            self.head = nn.Linear(width, vocab, bias=False)
            self.wte.weight = self.head.weight  # tied
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, 0.0, 0.02)
            for name, p in self.named_parameters():
                if name.endswith(("proj.weight", "out.weight")):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))

        def forward(self, idx, targets):
            """Per-token cross-entropy, (B, T)."""
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.head(self.lnf(x))
            nll = F.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
            )
            return nll.view(targets.shape)

    return GPT()


def char_split(torch):
    """nanoGPT's shakespeare_char data: (vocab size, train ids, validation ids), the ids as
    int64 tensors of the sorted distinct characters; first 90% train, last 10% validation."""
    text = open(os.path.join(os.environ["LM_KERAS_DATA_DIR"], "tinyshakespeare.txt")).read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.int64)
    n = int(0.9 * len(ids))
    return len(chars), ids[:n], ids[n:]


def adamw(torch, model, lr=1e-3):
    """nanoGPT's optimizer: AdamW, betas 0.9/0.99, weight decay 0.1 on matrices and embeddings only."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.99),
    )


def train_step(torch, model, opt, data, batch, context, generator=None, autocast=False):
    """One nanoGPT training step on `batch` random windows of `data`; returns the loss tensor."""
    ix = torch.randint(len(data) - context, (batch,), generator=generator)
    x = torch.stack([data[i : i + context] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + context] for i in ix])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(x, y).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def main():
    parser = common.arg_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 0.3
    try:
        import torch
    except ImportError:
        print("torch is not installed in this Python: skipping the PyTorch peer (it is optional)")
        common.emit("torch_peer", {"skipped": "torch not installed"}, args.out)
        return
    common.setup_environment()
    torch.manual_seed(1337)
    torch.set_num_threads(os.cpu_count())
    vocab, data, _ = char_split(torch)
    batch, context = 12, 64
    rng = torch.Generator().manual_seed(1)

    def variant(autocast):
        model = build(torch, vocab)
        opt = adamw(torch, model)

        def run():
            train_step(torch, model, opt, data, batch, context, generator=rng, autocast=autocast).item()
            return batch * context

        return run

    variants = {"torch_eager_float32": variant(False), "torch_eager_bf16_autocast": variant(True)}
    results = common.alternate(variants, rounds=args.rounds, seconds=args.seconds)
    rows = [[k, f"{r['median']:,.0f}", f"{1000 * r['seconds_per_call']:.1f}"] for k, r in results.items()]
    print(common.table(["variant", "tokens/s", "ms/step"], rows))
    common.emit(
        "torch_peer",
        {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "variants": {
                k: {
                    "tokens_per_sec": r["median"],
                    "ms_per_step": 1000 * r["seconds_per_call"],
                    "rounds": r["rounds"],
                }
                for k, r in results.items()
            },
            "raw": results,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
