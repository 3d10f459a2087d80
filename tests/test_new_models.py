"""ALMT, TETFN and CENET against the reference structure (MMSA git master): parameter counts
for MOSI's configuration and input sizes, output shapes, the modality subsets each refuses,
and what TETFN shares with Self-MM.

The reference counts are built here from the reference's layer lists (``ALMT.py``,
``multiTask/TETFN.py``, ``CENET.py`` and ``subNets/transformers_encoder``), module by module with
the reference's shapes, independently of msakit's model code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from msakit.errors import ConfigError, MsakitError
from msakit.models import InputDims, get_model_class

MOSI = dict(text=768, audio=5, vision=20)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def without_text(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("text_model.") and p.requires_grad)


class StubText(nn.Module):
    """Stands in for a text encoder of width ``hidden`` (its parameters are not counted)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.hidden_size = hidden
        self.proj = nn.Embedding(64, hidden)

    def token_states(self, ids, mask, embedding_hook=None):
        return self.proj(ids)


# ---- the reference's layer lists ----------------------------------------------------------
def ref_almt(d_t, d_a, d_v, lengths=(50, 375, 500), d=128, tokens=8, emb_depth=1, emb_heads=8, l_heads=8, ahl_depth=3, ahl_heads=8,
             fusion_depth=2, fusion_heads=8, emb_ff=128, fusion_ff=128, dim_head=64) -> nn.Module:
    """ALMT.__init__: embedding_{l,a,v} (Linear + Transformer with extra tokens), l_encoder,
    h_hyper, h_hyper_layer (HhyperLearningEncoder), fusion_layer (CrossTransformer), head."""

    def attention(dim, heads, head):
        inner = heads * head
        out = nn.Identity() if heads == 1 and head == dim else nn.Linear(inner, dim)
        return nn.ModuleList([nn.Linear(dim, inner, bias=False) for _ in range(3)] + [out])

    def encoder(dim, depth, heads, head, mlp):  # PreNormAttention (3 LNs) + PreNormForward (LN + FeedForward)
        return nn.ModuleList(
            nn.ModuleList([nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim), attention(dim, heads, head), nn.LayerNorm(dim), nn.Linear(dim, mlp), nn.Linear(mlp, dim)])
            for _ in range(depth)
        )

    def transformer(frames, token_len, dim, depth, heads, mlp):
        m = nn.Module()
        m.pos = nn.Parameter(torch.zeros(1, frames + (token_len or 0), dim))
        if token_len:
            m.extra = nn.Parameter(torch.zeros(1, token_len, dim))
        m.encoder = encoder(dim, depth, heads, dim_head, mlp)
        return m

    ref = nn.Module()
    for name, k, length in (("l", d_t, lengths[0]), ("a", d_a, lengths[1]), ("v", d_v, lengths[2])):
        setattr(ref, f"embedding_{name}", nn.Sequential(nn.Linear(k, d), transformer(length, tokens, d, emb_depth, emb_heads, emb_ff)))
    ref.l_encoder = transformer(tokens, None, d, ahl_depth - 1, l_heads, d)
    ref.h_hyper = nn.Parameter(torch.ones(1, tokens, d))
    head = d // ahl_heads
    ref.h_hyper_layer = nn.ModuleList(
        nn.ModuleList([nn.LayerNorm(d) for _ in range(4)] + [nn.Linear(d, ahl_heads * head, bias=False) for _ in range(5)]
                      + [nn.Identity() if ahl_heads == 1 and head == d else nn.Linear(ahl_heads * head, d)])
        for _ in range(ahl_depth)
    )
    ref.fusion = nn.Module()
    ref.fusion.pos_s = nn.Parameter(torch.zeros(1, tokens + 1, d))
    ref.fusion.pos_t = nn.Parameter(torch.zeros(1, tokens + 1, d))
    ref.fusion.extra = nn.Parameter(torch.zeros(1, 1, d))
    ref.fusion.encoder = encoder(d, fusion_depth, fusion_heads, dim_head, fusion_ff)
    ref.regression_head = nn.Linear(128, 1)  # hard-coded 128 in the reference
    return ref


def ref_transformer_encoder(dim, layers) -> nn.Module:
    """subNets/transformers_encoder TransformerEncoder: per layer MultiheadAttention (in_proj
    3d x d + 3d, out_proj), fc1 (d -> 4d), fc2, two LayerNorms; a final LayerNorm."""
    blocks = []
    for _ in range(layers):
        block = nn.Module()
        block.in_proj_weight = nn.Parameter(torch.zeros(3 * dim, dim))
        block.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        block.out_proj = nn.Linear(dim, dim)
        block.fc1, block.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        block.norms = nn.ModuleList([nn.LayerNorm(dim), nn.LayerNorm(dim)])
        blocks.append(block)
    return nn.ModuleList(blocks + [nn.LayerNorm(dim)])


def ref_tetfn(d_t, d_a, d_v, d=50, a_hidden=16, v_hidden=64, k_l=1, k_a=1, post=(64, 32, 32, 16)) -> nn.Module:
    """TETFN.__init__ (without text_model): AuViSubNet x2 (LSTM + Conv1d with the *audio* kernel
    for both), proj_l, four plain cross-modal transformers and two TextEnhancedTransformers
    (1 + 2 layers), three 2d-wide memories, the four post_*_layer_{1,2,3} heads."""
    ref = nn.Module()
    ref.audio_model = nn.ModuleList([nn.LSTM(d_a, a_hidden, batch_first=True), nn.Conv1d(a_hidden, d, k_a, bias=False)])
    ref.video_model = nn.ModuleList([nn.LSTM(d_v, v_hidden, batch_first=True), nn.Conv1d(v_hidden, d, k_a, bias=False)])
    ref.proj_l = nn.Conv1d(d_t, d, k_l, bias=False)
    ref.cross = nn.ModuleList([ref_transformer_encoder(d, 2) for _ in range(4)])
    ref.enhanced = nn.ModuleList([nn.ModuleList([ref_transformer_encoder(d, 1), ref_transformer_encoder(d, 2)]) for _ in range(2)])
    ref.memories = nn.ModuleList([ref_transformer_encoder(2 * d, 2) for _ in range(3)])
    f, t, a, v = post
    ref.heads = nn.ModuleList(
        nn.ModuleList([nn.Linear(i, k), nn.Linear(k, k), nn.Linear(k, 1)]) for i, k in ((6 * d, f), (d, t), (d, a), (d, v))
    )
    return ref


def ref_cenet_without_bert(h, d_a, d_v) -> nn.Module:
    """CE (visual/acoustic transforms, two SelfAttention(H), cat_connect) + BertClassificationHead."""
    ref = nn.Module()
    ref.visual_transform = nn.Sequential(nn.Linear(d_v, h), nn.ReLU(), nn.Linear(h, h))
    ref.acoustic_transform = nn.Sequential(nn.Linear(d_a, h), nn.ReLU(), nn.Linear(h, h))
    ref.hv = nn.ModuleList([nn.Linear(h, h) for _ in range(3)])
    ref.ha = nn.ModuleList([nn.Linear(h, h) for _ in range(3)])
    ref.cat_connect = nn.Linear(2 * h, h)
    ref.classifier = nn.ModuleList([nn.Linear(h, h), nn.Linear(h, 1)])
    return ref


def build(name: str, modalities=("t", "a", "v"), hidden=MOSI["text"], **overrides):
    cls = get_model_class(name)
    config = cls.config_class(**overrides)
    return cls(config, InputDims(tuple(modalities), MOSI["audio"] if "a" in modalities else None, MOSI["vision"] if "v" in modalities else None), StubText(hidden))


# ---- parameter counts ----------------------------------------------------------------------
def test_almt_parameter_count_equals_the_reference_for_mosi():
    reference = n_params(ref_almt(MOSI["text"], MOSI["audio"], MOSI["vision"]))
    assert reference == 2_603_649  # recorded in almt.py's docstring
    assert without_text(build("almt")) == reference


def test_almt_parameter_count_follows_the_sims_and_mosei_tables():
    defaults = get_model_class("almt").DATASET_DEFAULTS
    sims = defaults["sims"]["model"]
    ours = without_text(build("almt", **sims))
    assert ours == n_params(ref_almt(768, 5, 20, lengths=(39, 400, 55), fusion_depth=4))
    mosei = defaults["mosei"]["model"]
    assert without_text(build("almt", **mosei)) == n_params(ref_almt(768, 5, 20, lengths=(50, 500, 500), fusion_depth=4))


def test_tetfn_parameter_count_equals_the_reference_for_mosi_and_sims():
    reference = n_params(ref_tetfn(MOSI["text"], MOSI["audio"], MOSI["vision"]))
    assert reference == 1_254_224  # recorded in tetfn.py's docstring
    assert without_text(build("tetfn")) == reference
    sims = get_model_class("tetfn").DATASET_DEFAULTS["sims"]["model"]
    assert without_text(build("tetfn", **sims)) == n_params(ref_tetfn(768, 5, 20, k_l=3, k_a=5, post=(64, 64, 16, 32)))
    # conv_kernel_v > 0 sets the vision kernel the reference's config names but its code ignores.
    assert without_text(build("tetfn", conv_kernel_v=3)) == reference + 64 * 50 * 2


def test_cenet_parameter_count_equals_the_reference_without_bert():
    reference = n_params(ref_cenet_without_bert(768, MOSI["audio"], MOSI["vision"]))
    assert reference == 6_517_249  # recorded in cenet.py's docstring
    model = build_cenet_with_bert_shape(768)
    assert without_text(model) == reference


def build_cenet_with_bert_shape(hidden, num_layers=2):
    from transformers import BertConfig, BertModel

    from msakit.encoders.text import TextEncoder, _without_pooler

    torch.manual_seed(0)
    backbone = _without_pooler(BertModel, BertConfig(vocab_size=64, hidden_size=hidden, num_hidden_layers=num_layers, num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=32))
    cls = get_model_class("cenet")
    return cls(cls.config_class(), InputDims(("t", "a", "v"), MOSI["audio"], MOSI["vision"]), TextEncoder(backbone))


def test_cenet_bert_difference_is_the_unused_pooler():
    # bert-base-uncased: 109,482,240 parameters with its pooler (BertModel(BertConfig())), the
    # pooler being Linear(768, 768); msakit's encoder is built without it.
    assert 768 * 768 + 768 == 590_592


# ---- output shapes and behaviour -------------------------------------------------------------
class FakeBatch:
    def __init__(self, b=3, lt=7, la=9, lv=11, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.text_ids = torch.randint(1, 60, (b, lt), generator=g)
        self.text_mask = torch.ones(b, lt, dtype=torch.long)
        self.text_mask[0, 5:] = 0
        self.audio = torch.randn(b, la, MOSI["audio"], generator=g)
        self.vision = torch.randn(b, lv, MOSI["vision"], generator=g)
        self.audio_lengths = torch.tensor([la, la - 3, 2][:b])
        self.vision_lengths = torch.tensor([lv, 4, lv - 1][:b])


def test_output_shapes_match_the_reference():
    batch = FakeBatch()
    torch.manual_seed(0)
    almt = build("almt").eval()
    out = almt(batch)
    assert out.predictions["m"].shape == (3,) and out.features["m"].shape == (3, 128)
    tetfn = build("tetfn").eval()
    out = tetfn(batch)
    assert {s: tuple(p.shape) for s, p in out.predictions.items()} == {s: (3,) for s in "mtav"}
    assert {s: f.shape[1] for s, f in out.features.items()} == {"m": 64, "t": 32, "a": 32, "v": 16}
    cenet = build_cenet_with_bert_shape(32).eval()
    out = cenet(batch)
    assert out.predictions["m"].shape == (3,) and out.features["m"].shape == (3, 32)


@pytest.mark.parametrize("name", ["almt", "tetfn", "cenet"])
def test_padding_does_not_change_a_samples_prediction(name):
    """Padded positions are masked: a sample alone gives what it gives inside a padded batch."""
    torch.manual_seed(0)
    model = build_cenet_with_bert_shape(32) if name == "cenet" else build(name)
    model.eval()
    batch = FakeBatch()
    with torch.no_grad():
        together = model(batch).predictions["m"]
        alone = FakeBatch()
        alone.text_ids, alone.text_mask = batch.text_ids[1:2], batch.text_mask[1:2]
        alone.audio, alone.audio_lengths = batch.audio[1:2, : int(batch.audio_lengths[1])], batch.audio_lengths[1:2]
        alone.vision, alone.vision_lengths = batch.vision[1:2, : int(batch.vision_lengths[1])], batch.vision_lengths[1:2]
        single = model(alone).predictions["m"]
    np.testing.assert_allclose(single.numpy(), together[1:2].numpy(), rtol=1e-4, atol=1e-5)


def test_cenet_audio_and_vision_reach_the_prediction_and_embeddings_stay_fixed():
    torch.manual_seed(0)
    model = build_cenet_with_bert_shape(32)
    batch = FakeBatch()
    out = model(batch).predictions["m"]
    other = FakeBatch(seed=1)
    other.text_ids, other.text_mask = batch.text_ids, batch.text_mask
    assert not torch.allclose(out, model(other).predictions["m"])
    out.sum().backward()
    embeddings = model.text_model.backbone.embeddings.word_embeddings.weight
    assert embeddings.grad is None  # the reference computes the embeddings under no_grad
    assert model.enhancement.connect.weight.grad is not None
    assert model.text_model.backbone.encoder.layer[0].attention.self.query.weight.grad is not None


# ---- modality subsets ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, accepted, refused",
    [
        ("almt", [("t", "a", "v"), ("t", "a"), ("t", "v")], [("t",), ("a", "v"), ("a",)]),
        ("cenet", [("t", "a", "v"), ("t", "a"), ("t", "v")], [("t",), ("a", "v"), ("v",)]),
        ("tetfn", [("t", "a", "v")], [("t",), ("t", "a"), ("a", "v")]),
    ],
)
def test_supported_subsets_build_and_others_are_refused_in_one_line(name, accepted, refused):
    cls = get_model_class(name)
    for modalities in refused:
        with pytest.raises(ConfigError) as error:
            cls.check_data(None, modalities)
        message = str(error.value)
        assert isinstance(error.value, MsakitError) and "\n" not in message and ",".join(modalities) in message
    for modalities in accepted:
        cls.check_data(None, modalities)
        model = build_cenet_subset(modalities) if name == "cenet" else build(name, modalities)
        batch = FakeBatch()
        assert model(batch).predictions["m"].shape == (3,)


def build_cenet_subset(modalities):
    model = build_cenet_with_bert_shape(32)
    cls = get_model_class("cenet")
    dims = InputDims(tuple(modalities), MOSI["audio"] if "a" in modalities else None, MOSI["vision"] if "v" in modalities else None)
    return cls(cls.config_class(), dims, model.text_model)


def test_text_only_training_is_refused_with_the_reason(small_synthetic, tiny_bert_dir, tmp_path):
    import msakit

    for name in ("almt", "cenet", "tetfn"):
        with pytest.raises(MsakitError, match="needs t") as error:
            msakit.train(name, small_synthetic, run_dir=tmp_path / name,
                         overrides={"model": {"text_encoder": str(tiny_bert_dir)}, "data": {"modalities": ("t",)}, "train": {"max_epochs": 1, "progress": False}})
        assert "\n" not in str(error.value)


# ---- TETFN shares Self-MM's pieces ----------------------------------------------------------
def test_tetfn_trains_with_the_ulgm_objective_and_self_mm_groups(small_synthetic):
    from msakit.data import load_dataset
    from msakit.models import multitask
    from msakit.objectives import ULGM, RegressionL1

    train = load_dataset(small_synthetic)["train"]
    model = build("tetfn", **get_model_class("tetfn").TEST_OVERRIDES)
    objectives = model.build_objectives(train, "mosi")
    assert [type(o) for o in objectives] == [RegressionL1, ULGM]
    assert objectives[1].modalities == ("t", "a", "v")
    groups = {g["name"]: g for g in model.parameter_groups()}
    assert list(groups) == ["text_decay", "audio", "video", "other"]  # the stub text encoder has no bias (no "text_no_decay")
    assert groups["audio"]["params"] == list(model.audio_model.parameters()) and groups["audio"]["lr"] == model.config.lr_audio
    # The same functions build Self-MM's objectives and groups: one implementation.
    import inspect

    from msakit.models import self_mm, tetfn

    for module in (self_mm, tetfn):
        source = inspect.getsource(module)
        assert "five_parameter_groups(self)" in source and "fusion_and_ulgm_objectives(self, train_split)" in source
    assert multitask.unimodal_head is self_mm.unimodal_head is tetfn.unimodal_head
    no_ulgm = build("tetfn", ulgm=False, **get_model_class("tetfn").TEST_OVERRIDES).build_objectives(train, "mosi")
    assert [type(o) for o in no_ulgm] == [RegressionL1]


def test_almt_decoupled_weight_decay_matches_adamw():
    torch.manual_seed(0)
    model = build("almt", **get_model_class("almt").TEST_OVERRIDES)
    twin = build("almt", **get_model_class("almt").TEST_OVERRIDES)
    twin.load_state_dict(model.state_dict())
    c = model.config
    ours = torch.optim.Adam(model.parameter_groups(), fused=True)  # as the trainer builds it, nothing else called
    adamw = torch.optim.AdamW([p for p in twin.parameters()], lr=c.lr, weight_decay=c.weight_decay, fused=True)
    batch = FakeBatch()
    for _ in range(3):
        for m, opt in ((model, ours), (twin, adamw)):
            opt.zero_grad()
            m(batch).predictions["m"].pow(2).mean().backward()
            opt.step()
    assert c.weight_decay > 0
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_cenet_declares_its_gradient_norm_clipping_to_the_trainer():
    from types import SimpleNamespace

    cls = get_model_class("cenet")
    config = cls.config_class()
    clipping = cls.gradient_clipping(SimpleNamespace(config=config))
    assert config.grad_clip > 0 and (clipping.mode, clipping.limit, clipping.when) == ("norm", config.grad_clip, "step")
    assert cls.gradient_clipping(SimpleNamespace(config=cls.config_class(grad_clip=0.0))) is None


# ---- sweeps --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["almt", "tetfn", "cenet"])
def test_default_sweep_space_names_real_settings_at_both_ends(name):
    from msakit.config import resolve_config
    from msakit.workflows.sweep import DEFAULT_SPACES, load_space

    space, fixed = load_space(None, name)
    assert space is not DEFAULT_SPACES.get("nothing") and space == DEFAULT_SPACES[name] and not fixed
    for end in (0, -1):
        overrides: dict = {}
        for key, spec in space.items():
            section, _, field = key.partition(".")
            value = spec["choices"][end] if "choices" in spec else (spec["low"], spec["high"])[end]
            overrides.setdefault(section, {})[field] = value
        config = resolve_config(name, overrides=overrides).validate()
        for key, value in overrides.get("model", {}).items():
            assert getattr(config.model_config, key) == value
