"""DMD, DLF and ConFEDE against their reference structures, and their new objectives.

Reference counts are rebuilt from each reference file's layer list (mdswyz/DMD
``trains/singleTask/model/dmd.py`` + ``distillnets/``; pwang322/DLF
``trains/singleTask/model/DLF.py``), without the BERT text encoder, which msakit replaces by its
own: a parameter-free stand-in encoder returning 768-d states makes the trainable counts
comparable.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from msakit.config import resolve_config
from msakit.data.batching import Batch
from msakit.errors import ConfigError
from msakit.models import InputDims, ModelOutput, get_model_class
from msakit.objectives.decoupling import CosineOrthogonality, cosine_orthogonality, label_margin_hinge
from msakit.objectives.contrastive_decomposition import ContrastiveDecomposition, select_partners
from msakit.objectives.graph_distillation import GraphDistillationLoss, GraphDistillationUnit, edge_prior


class FixedTextFeatures(nn.Module):
    """Stands in for pre-extracted 768-d text features: no parameters."""

    def __init__(self, hidden_size: int = 768):
        super().__init__()
        self.hidden_size = hidden_size

    def token_states(self, ids, mask):
        h = torch.arange(self.hidden_size, dtype=torch.float32)
        position = torch.arange(ids.shape[1], dtype=torch.float32)[None, :, None]
        return torch.sin(0.1 * ids[..., None].float() * (h + 1) + 0.37 * position * (h % 7 + 1))

    def forward(self, ids, mask):  # the first token's state, as msakit's TextEncoder
        return self.token_states(ids, mask)[:, 0]


def _linear(i, o, bias=True):
    return i * o + (o if bias else 0)


def _transformer(e, layers):  # MulT's fairseq-style encoder, as in both repositories
    attention = 3 * e * e + 3 * e + _linear(e, e)
    return layers * (attention + _linear(e, 4 * e) + _linear(4 * e, e) + 4 * e) + 2 * e


def _residual(dim, hidden):  # proj1, proj2, out_layer
    return _linear(dim, hidden) + _linear(hidden, dim) + _linear(dim, 1)


def _gd_unit(hidden, g):  # DistillationKernel: W_logit, W_repr, W_edge
    return _linear(1, g) + _linear(hidden, g) + _linear(4 * g, 1)


def reference_dmd(in_dims=(768, 5, 20), d=50, nlevels=4, kernels=(5, 5, 5), length=50):
    steps = [length - k + 1 for k in kernels]
    count = sum(i * d * k for i, k in zip(in_dims, kernels))  # proj_l/a/v
    count += 3 * d * d + d * d + 3 * 2 * d * d  # encoder_s_*, encoder_c, decoder_*
    count += 2 * sum(_linear(d * s, d) for s in steps)  # proj_cosine_*, align_c_*
    count += 3 * _transformer(d, nlevels) + _residual(3 * d, 3 * d)  # self_attentions_c_*, proj1_c/proj2_c/out_layer_c
    count += 6 * _transformer(d, nlevels) + 3 * _transformer(2 * d, max(nlevels, 3))
    count += sum(_linear(d * s, d) + _linear(d, d * s) + _linear(d * s, 1) for s in steps)  # *_low
    count += 3 * _residual(2 * d, 2 * d)  # *_high
    count += 3 * _linear(2 * d, 2 * d) + _linear(3 * d, 3 * d) + _residual(9 * d, 9 * d)  # weight_*, proj1/proj2/out_layer
    count += _gd_unit(d, 64) + _gd_unit(2 * d, 32)  # run.py's two graph-distillation units
    unused = sum(_linear(d * s, d) for s in steps)  # proj_cosine_*: outputs enter no loss
    return count, unused


def reference_dlf(in_dims=(768, 5, 20), d=50, nlevels=2, kernels=(5, 5, 5), length=50):
    steps = [length - k + 1 for k in kernels]
    count = sum(i * d * k for i, k in zip(in_dims, kernels))  # proj_l/a/v
    count += 4 * _transformer(d, nlevels) + 3 * 2 * d * d  # encoder_s_*, encoder_c, decoder_*
    count += 2 * sum(_linear(d * s, d) for s in steps)  # proj_cosine_*, align_c_*
    count += 3 * _transformer(d, nlevels) + _residual(3 * d, 3 * d)  # self_attentions_c_*, proj1_c/proj2_c/out_layer_c
    count += 6 * _transformer(d, nlevels)  # trans_l_with_a/v and the four unused trans_{a,v}_with_*
    count += _transformer(d, nlevels) + 2 * _transformer(d, max(nlevels, 3))  # trans_l_mem, trans_a_mem, trans_v_mem
    low = sum(_linear(d * s, d) + _linear(d, d * s) + _linear(d * s, 1) for s in steps)  # *_low: returned to no loss
    count += low + 3 * _residual(d, d)  # *_high
    count += 3 * _linear(d, d) + _linear(3 * d, 3 * d) + _residual(6 * d, 6 * d)  # projector_*, proj1/proj2/out_layer
    unused = 4 * _transformer(d, nlevels) + sum(_linear(d * s, d) for s in steps) + low
    return count, unused


def reference_confede(in_dims=(768, 5, 20), d=768, layers=(2, 2), positions=(375, 500)):
    half = d // 2
    layer = 3 * d * d + 3 * d + _linear(d, d) + _linear(d, d) + _linear(d, d) + 4 * d  # attention, linear1/2 (ff = d), 2 norms
    count = unused = 0
    for in_dim, n, depth in zip(in_dims[1:], positions, layers):  # AudioEncoder, VisionEncoder
        count += _linear(in_dim, d) + d + (n + 1) * d + _linear(in_dim, d)  # fc, cls_token, position_embeddings, proj
        count += depth * layer + 2 * d + _linear(d, d)  # transformer, layernorm, dense
        unused += _linear(in_dim, d) + _linear(d, d)  # fc and dense: never run
    count += 6 * (2 * d + _linear(d, half))  # T/V/A_simi_proj, T/V/A_dissimi_proj
    count += _linear(6 * half, 2 * half) + _linear(2 * half, half) + _linear(half, half // 2) + _linear(half // 2, half // 4) + _linear(half // 4, 1)
    count += _linear(half, half // 2) + _linear(half // 2, half // 4) + _linear(half // 4, 1)  # mono_decoder
    return count, unused


def _model(name, kind="mosi", dims=InputDims(("t", "a", "v"), 5, 20), **settings):
    config = resolve_config(name, kind=kind, overrides={"model": settings}).model_config
    return get_model_class(name)(config, dims, text_encoder=FixedTextFeatures()), config


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _batch(lengths_t=(9, 6, 12), lengths_a=(14, 7, 20), lengths_v=(11, 24, 5), audio_dim=5, vision_dim=20, seed=0, labels=None):
    g = torch.Generator().manual_seed(seed)
    b = len(lengths_t)
    mask = (torch.arange(max(lengths_t))[None] < torch.tensor(lengths_t)[:, None]).long()
    ids = torch.randint(1, 50, mask.shape, generator=g) * mask
    audio = torch.randn(b, max(lengths_a), audio_dim, generator=g) * (torch.arange(max(lengths_a))[None, :, None] < torch.tensor(lengths_a)[:, None, None])
    vision = torch.randn(b, max(lengths_v), vision_dim, generator=g) * (torch.arange(max(lengths_v))[None, :, None] < torch.tensor(lengths_v)[:, None, None])
    y = torch.zeros(b) if labels is None else torch.as_tensor(labels, dtype=torch.float32)
    return Batch(index=torch.arange(b), labels={"m": y}, text_ids=ids, text_mask=mask, audio=audio,
                 audio_lengths=torch.tensor(lengths_a), vision=vision, vision_lengths=torch.tensor(lengths_v))


# ---- DMD ---------------------------------------------------------------------------------------
def test_dmd_parameter_count_is_the_reference_minus_its_unused_layers():
    with torch.device("meta"):
        model, c = _model("dmd")
    reference, unused = reference_dmd()
    assert (reference, unused) == (4_750_732, 345_150)  # the numbers in the docstring
    assert _trainable(model) == reference - unused == 4_405_582
    with torch.device("meta"):  # MOSEI's configuration: d = 30, 6 heads, kernels 5/1/3
        model, c = _model("dmd", "mosei", InputDims(("t", "a", "v"), 74, 35))
    reference, unused = reference_dmd((768, 74, 35), 30, 4, (5, 1, 3))
    assert _trainable(model) == reference - unused


def test_dmd_outputs_have_the_reference_shapes_and_do_not_depend_on_the_batch():
    model, c = _model("dmd")
    model.eval()
    batch = _batch()
    with torch.no_grad():
        out = model(batch)
        d = c.model_dim
        assert out.predictions["m"].shape == (3,)
        assert {k: tuple(v.shape) for k, v in out.features.items()} == {"m": (3, 9 * d), "t": (3, 2 * d), "a": (3, 2 * d), "v": (3, 2 * d)}
        assert out.extras == {}  # predicting computes nothing only the losses read
        extras = model.train()(batch).extras
        model.eval()
        assert set(extras["logits"]) == {"t_homo", "v_homo", "a_homo", "t_hetero", "v_hetero", "a_hetero", "c"}
        assert extras["graph_homo"]["edges"].shape == (6, 3)
        torch.testing.assert_close(extras["graph_homo"]["edges"].sum(0), torch.ones(3))  # softmax over the 6 edges
        assert extras["projected"]["t"].shape == (3, d, 46)  # 50 positions, kernel 5
        # Fixed-length inputs: a sample's prediction is the same alone as in a padded batch.
        alone = _batch((12,), (20,), (5,))
        alone.text_ids, alone.audio, alone.vision = batch.text_ids[2:, :12], batch.audio[2:, :20], batch.vision[2:, :5]
        torch.testing.assert_close(model(alone).predictions["m"], out.predictions["m"][2:], rtol=1e-4, atol=1e-5)


def test_dmd_refuses_modality_subsets_and_bad_lengths():
    with pytest.raises(ConfigError, match=r"DMD .* needs data.modalities=t,a,v, got t,a"):
        _model("dmd", dims=InputDims(("t", "a"), 5, None))
    with pytest.raises(ConfigError, match="model.audio_length=3 is shorter than model.conv_kernel_a=5"):
        resolve_config("dmd", overrides={"model": {"audio_length": 3}})
    clipping = _model("dmd")[0].gradient_clipping()
    assert (clipping.mode, clipping.limit, clipping.when) == ("value", 0.6, "backward")
    assert resolve_config("dmd", kind="mosi").train.grad_accumulation == 10


# ---- DLF ---------------------------------------------------------------------------------------
def test_dlf_parameter_count_is_the_reference_minus_its_unused_layers():
    with torch.device("meta"):
        model, c = _model("dlf")
    reference, unused = reference_dlf()
    assert (reference, unused) == (2_923_308, 1_294_703)  # the numbers in the docstring
    assert _trainable(model) == reference - unused == 1_628_605
    with torch.device("meta"):  # MOSEI's configuration: d = 50, kernels 3
        model, c = _model("dlf", "mosei", InputDims(("t", "a", "v"), 74, 35))
    assert c.orthogonality_width == 10
    reference, unused = reference_dlf((768, 74, 35), 50, 2, (3, 3, 3))
    assert _trainable(model) == reference - unused


def test_dlf_language_focused_outputs_and_refusals():
    model, c = _model("dlf")
    model.eval()
    batch = _batch()
    with torch.no_grad():
        out = model(batch)
        d = c.model_dim
        assert out.predictions["m"].shape == (3,)
        assert {k: tuple(v.shape) for k, v in out.features.items()} == {"m": (3, 6 * d), "t": (3, d), "a": (3, d), "v": (3, d)}
        assert set(model.train()(batch).extras["logits"]) == {"c", "t_focused", "a_focused", "v_focused"}
        model.eval()
        # The attractor: text queries audio. Changing audio moves the audio stream, not the text one.
        louder = _batch()
        louder.audio = batch.audio * 3.0
        changed = model(louder)
        torch.testing.assert_close(changed.features["t"], out.features["t"])
        assert not torch.allclose(changed.features["a"], out.features["a"])
    objectives = {type(o).__name__: o for o in model.build_objectives(None, "mosi")}
    assert objectives["AuxiliaryL1"].weights == {"c": 1.0, "t_focused": 3.0, "v_focused": 1.0, "a_focused": 1.0}
    with pytest.raises(ConfigError, match=r"DLF .* needs data.modalities=t,a,v, got t,v"):
        _model("dlf", dims=InputDims(("t", "v"), None, 20))


# ---- ConFEDE -----------------------------------------------------------------------------------
def test_confede_parameter_count_is_the_reference_minus_its_unused_layers():
    with torch.device("meta"):
        model, c = _model("confede")
    reference, unused = reference_confede()
    assert (reference, unused) == (20_118_914, 1_201_920)  # the numbers in the docstring
    assert _trainable(model) == reference - unused == 18_916_994
    with torch.device("meta"):  # the MOSEI and SIMS folders: their feature sizes, layers and position tables
        mosei, _ = _model("confede", "mosei", InputDims(("t", "a", "v"), 74, 35))
        sims, _ = _model("confede", "sims", InputDims(("t", "a", "v"), 33, 709))
    assert _trainable(mosei) == reference_confede((768, 74, 35), layers=(3, 3), positions=(500, 500))[0] - reference_confede((768, 74, 35))[1]
    assert _trainable(sims) == reference_confede((768, 33, 709), layers=(2, 1), positions=(400, 55))[0] - reference_confede((768, 33, 709))[1]


def test_confede_decomposes_each_modality_and_pairs_within_the_batch():
    model, c = _model("confede", encoder_dim=32, heads=2, audio_layers=1, video_layers=1, audio_positions=24, video_positions=24)
    model.eval()
    labels = [1.0, 1.2, 0.9, -2.0, -1.8, -2.1, 0.0]
    batch = _batch((5, 6, 7, 5, 6, 7, 4), (9, 8, 7, 6, 5, 4, 3), (3, 4, 5, 6, 7, 8, 9), labels=labels)
    with torch.no_grad():
        out = model(batch)
    assert out.predictions["m"].shape == (7,) and out.features["m"].shape == (7, 6 * 16)
    assert {k: tuple(v.shape) for k, v in out.extras["similarity"].items()} == {"t": (7, 16), "v": (7, 16), "a": (7, 16)}
    assert set(out.extras["logits"]) == {"sim_t", "sim_v", "sim_a", "dis_t", "dis_v", "dis_a"}
    objectives = model.build_objectives(None, "mosi")
    terms = {}
    for objective in objectives:
        terms.update(objective(out, batch, 0))
    assert set(terms) == {"mse_m", "contrastive", "mono_mse"} and all(torch.isfinite(v) for v in terms.values())
    with pytest.raises(ConfigError, match=r"ConFEDE .* needs data.modalities=t,a,v, got a,v"):
        _model("confede", dims=InputDims(("a", "v"), 5, 20))


def test_partners_are_chosen_by_rounded_label_and_embedding_similarity():
    labels = torch.tensor([1.1, 0.9, 1.2, 1.0, -2.0, -2.2, 3.0])
    embeddings = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.8, 0.3], [0.95, 0.05], [-1.0, 0.0], [0.5, 0.5]])
    partners, valid = select_partners(embeddings, labels)
    assert valid.tolist() == [True, True, True, True, False, False, False]  # the last three lack 2 same-label partners
    ss, dd, sd = partners[0, :2].tolist(), partners[0, 2:4].tolist(), partners[0, 4:].tolist()
    assert set(ss) == {1, 3}  # the most similar samples labelled 1 (not 2, which points elsewhere)
    assert set(dd) == {5, 6} and set(sd) == {4, 6}  # other labels: least similar; most similar (hard negatives)


def test_contrastive_decomposition_is_low_for_a_decomposed_layout_and_falls_under_optimisation():
    # 4 labels x 3 samples: similarity features carry the label (one direction per label, shared by
    # the modalities), dissimilarity features are orthogonal to them: a near-minimal loss.
    torch.manual_seed(3)
    labels = torch.tensor([-2.0, 0.0, 1.0, 3.0]).repeat_interleave(3)
    directions = torch.eye(8)
    good_sim = {s: 5 * directions[labels.long() + 2] for s in "tva"}
    good_dis = {s: 5 * directions[4:][torch.arange(12) % 4] for s in "tva"}
    pairing = torch.randn(12, 4)
    objective = ContrastiveDecomposition(1.0, 0.5)

    def loss(sim, dis):
        out = ModelOutput(predictions={}, extras={"similarity": sim, "dissimilarity": dis, "pairing": pairing})
        return objective(out, Batch(index=torch.arange(12), labels={"m": labels}), 0)["contrastive"]

    random = {s: torch.randn(12, 8, requires_grad=True) for s in "tva"}
    random_dis = {s: torch.randn(12, 8, requires_grad=True) for s in "tva"}
    start = float(loss(random, random_dis).detach())
    assert float(loss(good_sim, good_dis)) < 0.5 * start
    optimiser = torch.optim.Adam(list(random.values()) + list(random_dis.values()), lr=0.05)
    for _ in range(150):
        optimiser.zero_grad()
        loss(random, random_dis).backward()
        optimiser.step()
    assert float(loss(random, random_dis).detach()) < 0.5 * start


# ---- objectives ---------------------------------------------------------------------------------
def test_label_margin_hinge_is_zero_when_same_labels_cluster_and_positive_when_they_do_not():
    labels = torch.tensor([0.0, 0.0, 0.0, 2.0, 2.0, 2.0])
    clustered = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)
    assert label_margin_hinge(clustered, labels) == 0.0
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 3)  # each label spread over both directions
    assert label_margin_hinge(mixed, labels) > 0.3
    # No anchor has both a positive and a negative: nothing to compare, 0 (and differentiable).
    assert label_margin_hinge(torch.randn(3, 4, requires_grad=True), torch.tensor([0.0, 1.0, 2.0])) == 0.0


def test_label_margin_hinge_falls_under_optimisation():
    torch.manual_seed(0)
    labels = torch.tensor([-2.0, -2.0, 0.0, 0.0, 2.0, 2.0]).repeat_interleave(3)
    features = torch.randn(18, 8, requires_grad=True)
    optimiser = torch.optim.Adam([features], lr=0.05)
    start = float(label_margin_hinge(features, labels).detach())
    for _ in range(200):
        optimiser.zero_grad()
        loss = label_margin_hinge(features, labels)
        loss.backward()
        optimiser.step()
    assert start > 0.1 and float(label_margin_hinge(features, labels).detach()) < 0.05 * start


def test_cosine_orthogonality_is_zero_for_orthogonal_or_opposed_codes_and_learns_it():
    s = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    assert cosine_orthogonality(s, torch.tensor([[[0.0, 3.0, 0.0], [0.0, 0.0, 1.0]]])) == 0.0
    assert cosine_orthogonality(s, -s) == 0.0
    assert cosine_orthogonality(s, 2 * s) == pytest.approx(1.0)
    torch.manual_seed(1)
    specific, invariant = torch.randn(4, 5, 6) + 1, (torch.randn(4, 5, 6) + 1).requires_grad_()
    objective = CosineOrthogonality(("t",), 1.0)
    out = lambda: ModelOutput(predictions={}, extras={"specific": {"t": specific}, "invariant": {"t": invariant}})  # noqa: E731
    start = float(objective(out(), None, 0)["ortho"].detach())
    optimiser = torch.optim.Adam([invariant], lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        objective(out(), None, 0)["ortho"].backward()
        optimiser.step()
    assert start > 0.5 and float(objective(out(), None, 0)["ortho"].detach()) < 0.02


def test_graph_distillation_moves_students_toward_teachers_and_edges_toward_the_prior():
    torch.manual_seed(2)
    unit = GraphDistillationUnit(3, 4, 8)
    prior = edge_prior([0, 0, 1, 0, 1, 0])
    assert prior[2] == prior[4] > 0.4 and sum(prior) == pytest.approx(1.0)
    loss = GraphDistillationLoss("g", prior, 1.0, repr_metric="l1")
    logits = torch.tensor([[1.0, -1.0, 0.5, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, 1.0, -2.0, 0.0]])
    reprs = torch.randn(3, 4, 4)
    # Identical vertices: nothing to distil; the remaining loss is the edge regulariser alone.
    same = unit(logits[:1].expand(3, -1), reprs[:1].expand(3, -1, -1))
    regulariser = 10 * (same["edges"].mean(1) - torch.tensor(prior)).pow(2).sum()
    value = loss(ModelOutput(predictions={}, extras={"g": same}), None, 0)["graph_distill"]
    torch.testing.assert_close(value, regulariser)
    # Students move toward fixed teachers: optimising the predictions (and the edges) lowers the
    # loss and brings the vertices' predictions together.
    loss = GraphDistillationLoss("g", prior, 1.0, repr_metric=None)
    spread = float(logits.std(dim=0).mean())
    params = [logits.requires_grad_(), reprs.requires_grad_()] + list(unit.parameters())
    optimiser = torch.optim.Adam(params, lr=0.05)
    start = float(loss(ModelOutput(predictions={}, extras={"g": unit(logits, reprs)}), None, 0)["graph_distill"].detach())
    for _ in range(150):
        optimiser.zero_grad()
        loss(ModelOutput(predictions={}, extras={"g": unit(logits, reprs)}), None, 0)["graph_distill"].backward()
        optimiser.step()
    end = float(loss(ModelOutput(predictions={}, extras={"g": unit(logits, reprs)}), None, 0)["graph_distill"].detach())
    assert end < 0.2 * start
    assert float(logits.detach().std(dim=0).mean()) < 0.3 * spread


# ---- training ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dmd", "confede"])
def test_a_killed_run_resumes_to_the_same_result(name, small_synthetic, tiny_bert_dir, tmp_path, monkeypatch):
    # DMD: the graph units' parameters and the accumulation/clipping; ConFEDE: in-batch partners.
    from msakit.training.trainer import Trainer

    overrides = {"model": {"text_encoder": str(tiny_bert_dir), **get_model_class(name).TEST_OVERRIDES},
                 "train": {"batch_size": 16, "max_epochs": 2, "progress": False, "num_threads": 1, "grad_accumulation": 2}}
    config = resolve_config(name, data_path=str(small_synthetic), overrides=overrides)
    straight = Trainer(config, tmp_path / "straight").fit()
    original = Trainer.train_epoch

    def dying(self, epoch):
        if epoch == 2:  # killed during the second epoch
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tmp_path / "killed").fit()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = Trainer(config, tmp_path / "killed").fit(resume=True)
    assert resumed.metrics == straight.metrics
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]


def test_confede_pretrains_each_unimodal_encoder_inside_one_run_and_fuses_from_them(small_synthetic, tiny_bert_dir, tmp_path, monkeypatch):
    """``unimodal_pretraining=true``: Ttrain/Vtrain/Atrain as stages of the one run, each learning
    the label from its modality alone; the fusion's first epoch starts from their encoders."""
    import json

    from msakit.models.confede import ConFEDE
    from msakit.training.trainer import Trainer

    stage_weights, first_epoch = {}, {}
    adopt = ConFEDE.adopt_pretrained

    def recording(self, name, model):
        s = model.config.stage
        module = model.text_model if s == "t" else model.frame_encoders[s]
        stage_weights[s] = {k: v.clone() for k, v in module.state_dict().items()}
        return adopt(self, name, model)

    train_epoch = Trainer.train_epoch

    def watching(self, epoch):
        if not self.model.config.stage and not first_epoch:
            first_epoch.update({s: {k: v.clone() for k, v in (self.model.text_model if s == "t" else self.model.frame_encoders[s]).state_dict().items()}
                                for s in ("t", "v", "a")})
        return train_epoch(self, epoch)

    monkeypatch.setattr(ConFEDE, "adopt_pretrained", recording)
    monkeypatch.setattr(Trainer, "train_epoch", watching)
    settings = {"text_encoder": str(tiny_bert_dir), **get_model_class("confede").TEST_OVERRIDES, "unimodal_pretraining": True,
                "pretrain_epochs_t": 2, "pretrain_epochs_v": 1, "pretrain_epochs_a": 1, "pretrain_lr": 2e-3, "pretrain_batch_size": 64}
    config = resolve_config("confede", data_path=str(small_synthetic), overrides={
        "model": settings, "train": {"batch_size": 32, "grad_accumulation": 1, "max_epochs": 1, "early_stop": 100, "progress": False, "num_threads": 1}})
    Trainer(config, tmp_path / "run").fit()
    stages = json.loads((tmp_path / "run" / "results.json").read_text())["stages"]
    assert list(stages) == ["unimodal_t", "unimodal_v", "unimodal_a"]
    assert [stages[f"unimodal_{s}"]["epochs_run"] for s in ("t", "v", "a")] == [2, 1, 1]
    for s in ("t", "v", "a"):
        saved = json.loads((tmp_path / "run" / f"stage_unimodal_{s}" / "config.json").read_text())
        assert saved["data"]["modalities"] == [s] and saved["model_config"]["stage"] == s and saved["train"]["batch_size"] == 64
        assert all(torch.equal(first_epoch[s][k], v) for k, v in stage_weights[s].items()), s
    with pytest.raises(ConfigError, match="needs data.modalities=t,a,v"):
        _model("confede", dims=InputDims(("t",)))
