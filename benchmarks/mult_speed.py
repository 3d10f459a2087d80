"""MulT per-sample training speed: msakit's model against a re-implementation of the reference
forward (MMSA 2.2.1 ``singleTask/MULT.py`` + ``subNets/transformers_encoder/``), side by side.

How the comparison is made fair:
- Same parameters: the reference-style module is built from msakit's MulT and *shares its
  weights*, so both do the same arithmetic per position; first we check that on unpadded
  input (every sample of full length) both give the same predictions.
- Same inputs: the default synthetic data's frames; text as fixed per-token features (the
  reference reads pre-extracted features, so neither side runs a text encoder here).
- The reference pads every sequence to the file's length (text 50 tokens as in MMSA's
  ``text_bert``, audio/vision to the file's frame count) and attends over the padding;
  msakit trims each batch to its longest item and masks padding.
- One training step = forward, L1 loss, backward, Adam step; batch 16 (MMSA's MOSI value),
  one thread, the two alternated batch by batch so machine load hits both alike.

    python benchmarks/mult_speed.py --batches 30
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import write_result  # noqa: E402
from speed_harness import TEXT_PAD, TEXT_WIDTH, FixedText, alternate, max_abs_difference  # noqa: E402

from msakit.config import resolve_config  # noqa: E402
from msakit.data.batching import Batch  # noqa: E402
from msakit.data.synthetic import SyntheticSpec, make_synthetic_data  # noqa: E402
from msakit.models import InputDims, get_model_class  # noqa: E402


def fairseq_positions(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The reference's SinusoidalPositionalEmbedding: positions 1.. where channel 0 != 0."""
    bsz, length = x.shape[1], x.shape[0]
    half = dim // 2
    scale = math.log(10000) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.float) * -scale)
    table = torch.arange(length + 1, dtype=torch.float)[:, None] * freq[None, :]
    table = torch.cat([torch.sin(table), torch.cos(table)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(length + 1, 1)], dim=1)
    table[0] = 0
    tokens = x.transpose(0, 1)[:, :, 0]
    mask = tokens.ne(0)
    positions = torch.arange(1, length + 1)[None].expand(bsz, length) * mask
    return table[positions].transpose(0, 1)


def future_mask(lq: int, lk: int) -> torch.Tensor:
    return torch.triu(torch.full((lq, lk), float("-inf")), 1 + abs(lk - lq))[:lq, :lk]


def reference_attention(layer, query, key, value, mask):
    """fairseq MultiheadAttention as in the reference: (T, B, C), bmm, float softmax."""
    tgt, bsz, d = query.shape
    heads, head_dim = layer.heads, d // layer.heads
    w, b = layer.in_proj.weight, layer.in_proj.bias
    q = F.linear(query, w[:d], b[:d]) * head_dim**-0.5
    k = F.linear(key, w[d : 2 * d], b[d : 2 * d])
    v = F.linear(value, w[2 * d :], b[2 * d :])
    q = q.contiguous().view(tgt, bsz * heads, head_dim).transpose(0, 1)
    k = k.contiguous().view(-1, bsz * heads, head_dim).transpose(0, 1)
    v = v.contiguous().view(-1, bsz * heads, head_dim).transpose(0, 1)
    weights = torch.bmm(q, k.transpose(1, 2))
    if mask is not None:
        weights = weights + mask.unsqueeze(0)
    weights = F.softmax(weights.float(), dim=-1).type_as(weights)
    weights = F.dropout(weights, p=layer.attn_dropout, training=layer.training)
    out = torch.bmm(weights, v).transpose(0, 1).contiguous().view(tgt, bsz, d)
    return layer.out_proj(out)


def reference_layer(layer, x, x_k, causal):
    residual = x
    x = layer.norms[0](x)
    mask = future_mask(x.shape[0], (x if x_k is None else x_k).shape[0]) if causal else None
    if x_k is None:
        x = reference_attention(layer, x, x, x, mask)
    else:
        kv = layer.norms[0](x_k)
        x = reference_attention(layer, x, kv, kv, mask)
    x = residual + F.dropout(x, p=layer.res_dropout, training=layer.training)
    residual = x
    x = F.relu(layer.fc1(layer.norms[1](x)))
    x = F.dropout(x, p=layer.relu_dropout, training=layer.training)
    x = F.dropout(layer.fc2(x), p=layer.res_dropout, training=layer.training)
    return residual + x


def reference_encoder(enc, x_in, x_in_k=None):
    x = enc.dim**0.5 * x_in + fairseq_positions(x_in, enc.dim)
    x = F.dropout(x, p=enc.embed_dropout, training=enc.training)
    x_k = None
    if x_in_k is not None:
        x_k = enc.dim**0.5 * x_in_k + fairseq_positions(x_in_k, enc.dim)
        x_k = F.dropout(x_k, p=enc.embed_dropout, training=enc.training)
    for layer in enc.layers:
        x = reference_layer(layer, x, x_k, enc.causal)
    return enc.norm(x)


def reference_forward(model, text, audio, vision):
    """MMSA MULT.forward on fixed-length (padded) inputs, with msakit MulT's weights."""
    c = model.config
    x = {"t": F.dropout(text.transpose(1, 2), p=c.text_dropout, training=model.training), "a": audio.transpose(1, 2), "v": vision.transpose(1, 2)}
    proj = {s: (model.projections[s](x[s]) if s in model.projections else x[s]).permute(2, 0, 1) for s in "tav"}
    last = []
    for s in "tav":
        others = [o for o in "tav" if o != s]
        h = torch.cat([reference_encoder(model.crossmodal[f"{s}_with_{o}"], proj[s], proj[o]) for o in others], dim=2)
        last.append(reference_encoder(model.memory[s], h)[-1])
    last_hs = torch.cat(last, dim=1)
    hidden = model.proj2(F.dropout(F.relu(model.proj1(last_hs)), p=c.output_dropout, training=model.training)) + last_hs
    return model.out_layer(hidden).squeeze(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = SyntheticSpec()
    train = make_synthetic_data(spec)["train"]
    n = len(train["raw_text"])
    rng = np.random.default_rng(0)
    text_lengths = np.array([min(TEXT_PAD, len(t.split()) + 2) for t in train["raw_text"]])  # words + [CLS]/[SEP]
    ids = np.zeros((n, TEXT_PAD), dtype=np.int64)
    for i, length in enumerate(text_lengths):
        ids[i, :length] = rng.integers(1, 1000, length)
    table = torch.randn(1000, TEXT_WIDTH)
    table[0] = 0
    audio, vision = torch.from_numpy(train["audio"]), torch.from_numpy(train["vision"])
    audio_lengths, vision_lengths = torch.tensor(train["audio_lengths"]), torch.tensor(train["vision_lengths"])
    labels = torch.from_numpy(np.asarray(train["regression_labels"], dtype=np.float32))

    config = resolve_config("mult").model_config
    dims = InputDims(("t", "a", "v"), audio.shape[2], vision.shape[2])
    model = get_model_class("mult")(config, dims, text_encoder=FixedText(table))

    # 1. Same numbers where there is no padding: full-length samples through both forwards.
    model.eval()
    with torch.no_grad():
        full = Batch(index=torch.arange(4), labels={}, text_ids=torch.from_numpy(ids[:4, :12]) + 1, text_mask=torch.ones(4, 12, dtype=torch.long),
                     audio=audio[:4, :20] + 0.01, audio_lengths=torch.full((4,), 20), vision=vision[:4, :24] + 0.01, vision_lengths=torch.full((4,), 24))
        ours = model(full).predictions["m"]
        theirs = reference_forward(model, table[full.text_ids], full.audio, full.vision)
    max_difference = max_abs_difference(ours, theirs)
    print(f"unpadded inputs: max |msakit - reference| = {max_difference:.2e}")
    assert max_difference < 1e-4, max_difference

    # 2. Training steps, alternated.
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    order = rng.permutation(n)
    batches = []
    for step in range(args.batches):
        rows = order[(step * args.batch_size) % (n - args.batch_size):][: args.batch_size]
        rows_t = torch.from_numpy(rows)
        lt, la, lv = int(text_lengths[rows].max()), int(audio_lengths[rows_t].max()), int(vision_lengths[rows_t].max())
        mask = (torch.arange(lt)[None] < torch.from_numpy(text_lengths[rows])[:, None]).long()
        batch = Batch(index=rows_t, labels={"m": labels[rows_t]}, text_ids=torch.from_numpy(ids[rows, :lt]), text_mask=mask,
                      audio=audio[rows_t, :la], audio_lengths=audio_lengths[rows_t], vision=vision[rows_t, :lv], vision_lengths=vision_lengths[rows_t])
        batches.append((rows, rows_t, batch))

    def train_step(name: str, step: int) -> int:
        rows, rows_t, batch = batches[step]
        optimizer.zero_grad()
        if name == "msakit":
            prediction = model(batch).predictions["m"]
        else:
            prediction = reference_forward(model, table[torch.from_numpy(ids[rows])], audio[rows_t], vision[rows_t])
        (prediction - batch.labels["m"]).abs().mean().backward()
        optimizer.step()
        return len(rows)

    timed = alternate({"msakit": lambda i: train_step("msakit", i), "reference": lambda i: train_step("reference", i)}, args.batches)
    times = timed["seconds"]
    per_sample = timed["ms_per_sample"]
    ratio = times["reference"] / times["msakit"]
    print(f"ms per training sample: msakit {per_sample['msakit']:.2f}, reference forward {per_sample['reference']:.2f}; msakit is {ratio:.2f}x as fast")
    write_result("mult_speed", {
        "what": "MulT training step per sample, msakit vs a re-implementation of the MMSA 2.2.1 reference forward sharing the same weights; fixed text features (no text encoder on either side)",
        "data": f"default synthetic train split ({n} samples): audio padded to {audio.shape[1]}, vision to {vision.shape[1]}, text to {TEXT_PAD} for the reference; msakit trims each batch",
        "config": "MMSA mosi values (d=50, 10 heads, 4 levels, kernels 5), batch %d, %d thread(s), %d batches alternated" % (args.batch_size, args.threads, args.batches),
        "unpadded_max_abs_difference": max_difference,
        "ms_per_sample": per_sample,
        "speedup_msakit_over_reference": ratio,
    })


if __name__ == "__main__":
    main()
