"""TFN, LMF and MulT against the reference structure (MMSA 2.2.1) and their own promises.

The reference counts below are built from the reference files' layer lists
(``models/singleTask/TFN.py``, ``LMF.py``, ``MULT.py``, ``subNets/FeatureNets.py``,
``subNets/transformers_encoder/``), layer by layer. The reference reads fixed text features
(768-d BERT states in MMSA's MOSI files); our models take token states from a text encoder,
so the comparison uses a parameter-free stand-in encoder that returns 768-d states: the
trainable parameters must then be exactly the reference's.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from msakit.config import resolve_config
from msakit.data.batching import Batch
from msakit.errors import ConfigError
from msakit.models import InputDims, get_model_class


class FixedTextFeatures(nn.Module):
    """Stands in for pre-extracted text features: no parameters, ``hidden_size``-d states."""

    def __init__(self, hidden_size: int = 768):
        super().__init__()
        self.hidden_size = hidden_size

    def token_states(self, ids, mask):
        # A fixed function of (token id, position): a sample's states do not depend on its batch.
        h = torch.arange(self.hidden_size, dtype=torch.float32)
        position = torch.arange(ids.shape[1], dtype=torch.float32)[None, :, None]
        return torch.sin(0.1 * ids[..., None].float() * (h + 1) + 0.37 * position * (h % 7 + 1))


def _linear(i, o):
    return i * o + o


def _lstm(i, h):
    return 4 * h * (i + h) + 8 * h  # weights and PyTorch's two bias vectors


def _subnet(i, h):  # BatchNorm1d(i) + 3 Linear
    return 2 * i + _linear(i, h) + 2 * _linear(h, h)


def _text_subnet(i, h, o):  # LSTM + Linear
    return _lstm(i, h) + _linear(h, o)


def reference_tfn(text_in, audio_in, video_in, text_hidden, audio_hidden, video_hidden, text_out, post_fusion_dim):
    return (
        _subnet(audio_in, audio_hidden) + _subnet(video_in, video_hidden) + _text_subnet(text_in, text_hidden, text_out)
        + _linear((text_out + 1) * (video_hidden + 1) * (audio_hidden + 1), post_fusion_dim)
        + _linear(post_fusion_dim, post_fusion_dim) + _linear(post_fusion_dim, 1)
    )  # output_range/output_shift are Parameters with requires_grad=False: not trainable


def reference_lmf(text_in, audio_in, video_in, text_hidden, audio_hidden, video_hidden, rank):
    text_out = text_hidden // 2
    factors = rank * ((audio_hidden + 1) + (video_hidden + 1) + (text_out + 1))
    return _subnet(audio_in, audio_hidden) + _subnet(video_in, video_hidden) + _text_subnet(text_in, text_hidden, text_out) + factors + rank + 1


def _transformer(e, layers):
    attention = 3 * e * e + 3 * e + _linear(e, e)  # in_proj weight + bias, out_proj
    layer = attention + _linear(e, 4 * e) + _linear(4 * e, e) + 2 * 2 * e  # fc1, fc2, 2 LayerNorms
    return layers * layer + 2 * e  # final LayerNorm


def reference_mult(text_in, audio_in, video_in, d, nlevels, kernels):
    convs = sum(i * d * k for i, k in zip((text_in, audio_in, video_in), kernels) if i != d)
    combined = 6 * d
    return convs + 6 * _transformer(d, nlevels) + 3 * _transformer(2 * d, max(nlevels, 3)) + 2 * _linear(combined, combined) + _linear(combined, 1)


def _model(name, kind="mosi", dims=InputDims(("t", "a", "v"), 5, 20), text=768, **settings):
    config = resolve_config(name, kind=kind, overrides={"model": settings}).model_config
    model = get_model_class(name)(config, dims, text_encoder=FixedTextFeatures(text) if "t" in dims.modalities else None)
    return model, config


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("kind", ["mosi", "mosei", "sims"])
def test_parameter_counts_equal_the_reference_structure(kind):
    # MMSA's unaligned feature sizes: MOSI/MOSEI text 768, audio 5/74, vision 20/35; SIMS 768, 33, 709.
    audio, vision = {"mosi": (5, 20), "mosei": (74, 35), "sims": (33, 709)}[kind]
    dims = InputDims(("t", "a", "v"), audio, vision)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        _check_counts(kind, dims, audio, vision)


def _check_counts(kind, dims, audio, vision):
    tfn, c = _model("tfn", kind, dims)
    assert _trainable(tfn) == reference_tfn(768, audio, vision, c.text_hidden, c.audio_hidden, c.video_hidden, c.text_out, c.post_fusion_dim)
    lmf, c = _model("lmf", kind, dims)
    assert _trainable(lmf) == reference_lmf(768, audio, vision, c.text_hidden, c.audio_hidden, c.video_hidden, c.rank)
    mult, c = _model("mult", kind, dims)
    assert _trainable(mult) == reference_mult(768, audio, vision, c.model_dim, c.layers, (c.conv_kernel_t, c.conv_kernel_a, c.conv_kernel_v))
    if kind == "mosi":  # the numbers recorded in the model docstrings
        assert (_trainable(tfn), _trainable(lmf), _trainable(mult)) == (9_497_043, 505_071, 2_571_551)


def _batch(lengths_t=(9, 6, 12), lengths_a=(14, 7, 20), lengths_v=(11, 24, 5), audio_dim=5, vision_dim=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = len(lengths_t)
    mask = (torch.arange(max(lengths_t))[None] < torch.tensor(lengths_t)[:, None]).long()
    audio = torch.randn(b, max(lengths_a), audio_dim, generator=g) * (torch.arange(max(lengths_a))[None, :, None] < torch.tensor(lengths_a)[:, None, None])
    vision = torch.randn(b, max(lengths_v), vision_dim, generator=g) * (torch.arange(max(lengths_v))[None, :, None] < torch.tensor(lengths_v)[:, None, None])
    return Batch(
        index=torch.arange(b), labels={"m": torch.zeros(b)}, text_ids=mask * 7, text_mask=mask,
        audio=audio, audio_lengths=torch.tensor(lengths_a), vision=vision, vision_lengths=torch.tensor(lengths_v),
    )


def test_output_shapes_match_the_reference_outputs():
    batch = _batch()
    tfn, c = _model("tfn")
    out = tfn.eval()(batch)
    assert out.predictions["m"].shape == (3,)
    assert {k: tuple(v.shape) for k, v in out.features.items()} == {"m": (3, c.post_fusion_dim), "t": (3, c.text_out), "a": (3, c.audio_hidden), "v": (3, c.video_hidden)}
    assert out.predictions["m"].abs().max() < c.output_bound  # the sigmoid-scaled output range
    lmf, c = _model("lmf")
    out = lmf.eval()(batch)
    assert out.predictions["m"].shape == (3,) and out.features["m"].shape == (3, c.rank)  # reference Feature_f: (B, rank)
    assert out.features["t"].shape == (3, c.text_hidden // 2)
    mult, c = _model("mult")
    out = mult.eval()(batch)
    d = c.model_dim
    assert out.predictions["m"].shape == (3,)
    assert {k: tuple(v.shape) for k, v in out.features.items()} == {"t": (3, 2 * d), "a": (3, 2 * d), "v": (3, 2 * d), "m": (3, 6 * d)}


@pytest.mark.parametrize("name", ["tfn", "lmf", "mult"])
def test_a_sample_gets_the_same_prediction_alone_as_in_a_padded_batch(name):
    model, _ = _model(name, **({"text_out": 8, "video_hidden": 16} if name == "tfn" else {}))
    model.eval()
    batch = _batch()
    with torch.no_grad():
        together = model(batch).predictions["m"]
        for i in range(3):
            lt, la, lv = int(batch.text_mask[i].sum()), int(batch.audio_lengths[i]), int(batch.vision_lengths[i])
            alone = _batch((lt,), (la,), (lv,))
            alone = dataclasses.replace(
                alone, text_ids=batch.text_ids[i : i + 1, :lt], audio=batch.audio[i : i + 1, :la], vision=batch.vision[i : i + 1, :lv]
            )
            torch.testing.assert_close(model(alone).predictions["m"], together[i : i + 1], rtol=1e-4, atol=1e-5)


def test_padding_does_not_leak_into_mult():
    model, _ = _model("mult")
    model.eval()
    batch = _batch()
    noisy = dataclasses.replace(batch, audio=batch.audio.clone(), vision=batch.vision.clone())
    noisy.audio[1, 7:] = 100.0  # beyond sample 1's audio length
    noisy.vision[2, 5:] = -100.0
    with torch.no_grad():
        torch.testing.assert_close(model(noisy).predictions["m"], model(batch).predictions["m"])


def test_modality_subsets_are_supported_or_refused_with_the_reason():
    text_audio = InputDims(("t", "a"), 5, None)
    batch = _batch()
    for name in ("tfn", "lmf"):
        for dims in (InputDims(("t",)), InputDims(("a", "v"), 5, 20), text_audio):
            model, _ = _model(name, dims=dims, **({"text_out": 8, "video_hidden": 16} if name == "tfn" else {}))
            assert model.eval()(batch).predictions["m"].shape == (3,)
    mult, c = _model("mult", dims=text_audio)
    out = mult.eval()(batch)
    assert out.features["m"].shape == (3, 2 * c.model_dim)  # each target attends to one source
    with pytest.raises(ConfigError, match=r"mult: data.modalities=t: MulT needs two or three modalities"):
        _model("mult", dims=InputDims(("t",)))
    with pytest.raises(ConfigError, match="model.model_dim=50 must be divisible by model.heads=3"):
        resolve_config("mult", overrides={"model": {"heads": 3}})
    with pytest.raises(ConfigError, match="model.text_hidden=1"):
        resolve_config("lmf", overrides={"model": {"text_hidden": 1}})


def test_lmf_factors_train_at_their_own_rate_and_mult_asks_for_gradient_clipping():
    lmf, c = _model("lmf", lr_factor=1e-4)
    groups = {g["name"]: g for g in lmf.parameter_groups()}
    assert groups["factors"]["lr"] == 1e-4 and len(groups["factors"]["params"]) == 3
    assert sum(len(g["params"]) for g in groups.values()) == len([p for p in lmf.parameters() if p.requires_grad])
    mult, c = _model("mult")
    clipping = mult.gradient_clipping()
    assert (clipping.mode, clipping.limit, clipping.when) == ("value", c.grad_clip, "backward") and c.grad_clip == 0.6


def test_mult_computes_the_reference_forward_exactly_on_unpadded_input():
    """With nothing to mask (every sequence full length), msakit's MulT and a re-implementation
    of the reference forward (fairseq attention, padding found by zero features, the reference's
    future mask; benchmarks/mult_speed.py) give the same predictions from the same weights."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from mult_speed import reference_forward

    model, _ = _model("mult", model_dim=8, heads=2, layers=2, conv_kernel_a=3)
    model.eval()
    batch = _batch((9, 9, 9), (14, 14, 14), (11, 11, 11))
    with torch.no_grad():
        ours = model(batch).predictions["m"]
        theirs = reference_forward(model, model.text_model.token_states(batch.text_ids, batch.text_mask), batch.audio, batch.vision)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["tfn", "mult"])
def test_frozen_text_encoder_is_fixed_cached_and_batch_independent(name, tiny_bert_dir):
    """text_finetune=false (the default, as the reference's fixed features): the encoder gets no
    gradient and no optimiser group, never drops out, and a sequence's states are the same
    alone or in any padded batch (each sequence is encoded on its own, then cached)."""
    from msakit.encoders import TextEncoder

    def build(**settings):
        cls = get_model_class(name)
        config = dataclasses.replace(cls.config_class(), **cls.TEST_OVERRIDES, **settings) if hasattr(cls, "TEST_OVERRIDES") else cls.config_class(**settings)
        return cls(config, InputDims(("t", "a", "v"), 5, 20), text_encoder=TextEncoder.from_pretrained(tiny_bert_dir))

    model = build()
    encoder = model.text_model
    assert encoder.frozen and not any(p.requires_grad for p in encoder.parameters())
    assert not any(any(p is q for q in encoder.parameters()) for g in model.parameter_groups() for p in g["params"])
    model.train()
    assert not encoder.training and not encoder.backbone.training and model.training

    from msakit.encoders import text as text_module

    text_module._SHARED_STATES.clear()
    ids = torch.tensor([[101, 7, 8, 9, 102, 0, 0], [101, 5, 6, 102, 0, 0, 0], [101, 7, 8, 9, 10, 11, 102]])
    mask = (ids != 0).long()
    batch_states = encoder.token_states(ids, mask)
    assert len(encoder._cache.states) == 3
    alone = encoder.token_states(ids[1:2, :4], mask[1:2, :4])
    assert torch.equal(alone[0], batch_states[1, :4]) and not batch_states[1, 4:].any()
    text_module._SHARED_STATES.clear()
    fresh = build().text_model  # a new instance (e.g. after a resume) computes the same numbers
    assert torch.equal(fresh.token_states(ids[[2, 0]], mask[[2, 0]]), batch_states[[2, 0]])

    y = model(_batch()).predictions["m"].sum()
    y.backward()
    assert all(p.grad is None for p in encoder.parameters())

    tuned = build(text_finetune=True).text_model
    assert not tuned.frozen and all(p.requires_grad for p in tuned.parameters())


def test_frozen_encoders_of_the_same_weights_share_their_states_and_never_read_stale_ones(tiny_bert_dir):
    """fusion=auto's text stage and correction (and a sweep's trials) read one frozen encoder:
    each transcript is encoded once per process; an encoder whose weights change after freeze()
    (a checkpoint loaded into it) computes its own states."""
    from msakit.encoders import TextEncoder
    from msakit.encoders import text as text_module

    text_module._SHARED_STATES.clear()
    ids = torch.tensor([[101, 7, 8, 9, 102], [101, 5, 6, 102, 0]])
    mask = (ids != 0).long()
    first = TextEncoder.from_pretrained(tiny_bert_dir).freeze()
    states = first(ids, mask)
    second = TextEncoder.from_pretrained(tiny_bert_dir).freeze()
    calls = []
    second.backbone.register_forward_hook(lambda *args: calls.append(1))
    assert torch.equal(second(ids, mask), states) and not calls  # read from the first one's cache

    changed = TextEncoder.from_pretrained(tiny_bert_dir).freeze()
    changed.backbone.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        weights = {k: v + 0.01 if v.is_floating_point() else v for k, v in changed.state_dict().items()}
    changed.load_state_dict(weights)  # after freeze(): other weights, other states
    assert not torch.equal(changed(ids, mask), states) and len(calls) == 2
    plain = TextEncoder.from_pretrained(tiny_bert_dir)
    plain.load_state_dict(weights)
    plain.eval()
    single = torch.cat([plain(ids[i : i + 1, : int(mask[i].sum())], mask[i : i + 1, : int(mask[i].sum())]) for i in range(2)])
    assert torch.allclose(changed(ids, mask), single, atol=1e-6)
