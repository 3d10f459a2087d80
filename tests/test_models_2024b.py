"""LNLN and KuDA against their authors' reference structure: parameter counts for MOSI's
configuration and input sizes, output shapes, the modality subsets each refuses, the random
missing of LNLN's training protocol and the losses they add (``msakit.objectives.incomplete``).

The reference counts are built here from the reference files' layer lists, module by module with
the reference's shapes, independently of msakit's model code: LNLN from github:Haoyu-ha/LNLN
``models/lnln.py`` + ``models/basic_layers.py`` with ``configs/train_mosi.yaml``.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from msakit.data.batching import Batch
from msakit.errors import MsakitError
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

    def forward(self, ids, mask):
        return self.proj(ids)[:, 0]


def build(name: str, modalities=("t", "a", "v"), hidden=MOSI["text"], **overrides):
    cls = get_model_class(name)
    dims = InputDims(tuple(modalities), MOSI["audio"] if "a" in modalities else None, MOSI["vision"] if "v" in modalities else None)
    return cls(cls.config_class(**overrides), dims, StubText(hidden))


def fake_batch(b=4, length=7, frames=(9, 11), seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([length, length - 2, length - 1, 3][:b])
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    ids = torch.randint(3, 60, (b, length), generator=g) * mask
    return Batch(index=torch.arange(b), labels={"m": torch.randn(b, generator=g)}, text_ids=ids, text_mask=mask,
                 audio=torch.randn(b, frames[0], MOSI["audio"], generator=g), audio_lengths=torch.tensor([9, 5, 7, 9][:b]),
                 vision=torch.randn(b, frames[1], MOSI["vision"], generator=g), vision_lengths=torch.tensor([11, 4, 11, 8][:b]))


# ---- the reference's layer lists ----------------------------------------------------------
def _attention(dim, heads, head):
    inner = heads * head
    out = nn.Identity() if heads == 1 and head == dim else nn.Linear(inner, dim)
    return nn.ModuleList([nn.Linear(dim, inner, bias=False) for _ in range(3)] + [out])


def _encoder(dim, depth, heads, mlp, head=64):
    """basic_layers.TransformerEncoder / CrossTransformerEncoder: PreNorm_qkv (3 LNs + Attention)
    and PreNorm (LN + FeedForward) per layer."""
    return nn.ModuleList(
        nn.ModuleList([nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim), _attention(dim, heads, head),
                       nn.LayerNorm(dim), nn.Linear(dim, mlp), nn.Linear(mlp, dim)])
        for _ in range(depth)
    )


def _transformer(frames, token_len, dim, depth, heads, mlp):
    """basic_layers.Transformer: pos_embedding (frames + token_len), extra_token, encoder."""
    m = nn.Module()
    m.pos = nn.Parameter(torch.zeros(1, frames + (token_len or 0), dim))
    if token_len:
        m.extra = nn.Parameter(torch.zeros(1, token_len, dim))
    m.encoder = _encoder(dim, depth, heads, mlp)
    return m


def ref_lnln(d_t, d_a, d_v, lengths=(50, 375, 500), d=128, tokens=8, depth=2, heads=8, fusion_depth=2, hyper_depth=3) -> nn.Module:
    """LNLN.__init__ without bertmodel, configs/train_mosi.yaml."""
    ref = nn.Module()
    ref.h_hyper = nn.Parameter(torch.ones(1, tokens, d))
    ref.h_p = nn.Parameter(torch.ones(1, tokens, d))
    for name, k, length in (("l", d_t, lengths[0]), ("a", d_a, lengths[1]), ("v", d_v, lengths[2])):
        setattr(ref, f"proj_{name}", nn.Sequential(nn.Linear(k, d), _transformer(length, tokens, d, depth, heads, d)))
    ref.proxy = _transformer(3 * tokens, tokens, d, 2, 8, d)
    ref.effective_discriminator = nn.Sequential(nn.Linear(d, 64), nn.Linear(64, 2))
    ref.completeness_check = nn.ModuleList([_transformer(tokens, 1, d, 2, 8, d), nn.Linear(d, d // 2), nn.Linear(d // 2, 1)])
    ref.reconstructor = nn.ModuleList(_transformer(tokens, None, d, 2, 8, d) for _ in range(3))
    ref.language = _transformer(tokens, None, d, 2, 8, d)
    ref.hyper = nn.ModuleList(  # HhyperLearningEncoder: PreNorm_hyper (4 LNs) + q, k_ta, k_tv, v_ta, v_tv, to_out
        nn.ModuleList([nn.LayerNorm(d) for _ in range(4)] + [nn.Linear(d, d, bias=False) for _ in range(5)] + [nn.Linear(d, d)])
        for _ in range(hyper_depth)
    )
    ref.fusion = nn.Module()  # CrossTransformer
    ref.fusion.pos_s = nn.Parameter(torch.zeros(1, tokens + 1, d))
    ref.fusion.pos_t = nn.Parameter(torch.zeros(1, tokens + 1, d))
    ref.fusion.extra = nn.Parameter(torch.zeros(1, 1, d))
    ref.fusion.encoder = _encoder(d, fusion_depth, heads, d)
    ref.regression = nn.Linear(d, 1)
    return ref


# ---- LNLN ------------------------------------------------------------------------------------
def test_lnln_parameter_count_equals_the_reference_for_mosi():
    reference = n_params(ref_lnln(MOSI["text"], MOSI["audio"], MOSI["vision"]))
    assert reference == 6_483_012  # recorded in lnln.py's docstring
    assert without_text(build("lnln")) == reference


def test_lnln_parameter_count_follows_the_mosei_and_sims_tables():
    defaults = get_model_class("lnln").DATASET_DEFAULTS
    mosei = {k: v for k, v in defaults["mosei"]["model"].items()}
    assert without_text(build("lnln", **mosei)) == n_params(ref_lnln(768, 5, 20, lengths=(50, 500, 500), fusion_depth=4))
    sims = {k: v for k, v in defaults["sims"]["model"].items()}
    assert without_text(build("lnln", **sims)) == n_params(ref_lnln(768, 5, 20, lengths=(39, 400, 55), fusion_depth=4))
    assert sims["adversarial_weight"] == 0.6  # configs/train_sims.yaml beta


def test_lnln_output_shapes_and_training_extras():
    torch.manual_seed(0)
    model = build("lnln", **get_model_class("lnln").TEST_OVERRIDES)
    batch = fake_batch()
    model.train()
    out = model(batch)
    d, n = model.config.model_dim, model.config.token_length
    assert out.predictions["m"].shape == (4,) and out.features["m"].shape == (4, d)
    assert out.extras["effectiveness_logits"].shape == (2 * 4 * n, 2)
    assert out.extras["reconstructed"].shape == out.extras["complete"].shape == (4, 3 * n, d)
    rates = out.extras["dominant_missing_rate"]
    assert (rates == 0).sum() == 2 and ((rates > 0) & (rates < 1)).sum() == 2  # half of the batch kept complete
    model.eval()  # evaluation: the data as given, no draw, no extras
    first, second = model(batch), model(batch)
    assert first.extras == {} and torch.equal(first.predictions["m"], second.predictions["m"])


def test_lnln_without_missing_training_sees_the_clean_batch_only():
    torch.manual_seed(0)
    model = build("lnln", train_missing=False, **get_model_class("lnln").TEST_OVERRIDES).train()
    out = model(fake_batch())
    assert torch.equal(out.extras["dominant_missing_rate"], torch.zeros(4))
    n = model.config.token_length
    assert torch.equal(out.extras["complete"][:, :n], model._extract(*[getattr(fake_batch(), k) for k in ("text_ids", "text_mask", "audio", "vision")], fake_batch())[ "t"])


@pytest.mark.parametrize("modalities", [("t",), ("a", "v"), ("a",), ("v",)])
def test_lnln_refuses_modality_sets_without_language_and_a_second_modality(modalities):
    with pytest.raises(MsakitError, match="LNLN corrects language.*t,a,v"):
        build("lnln", modalities=modalities)


@pytest.mark.parametrize("modalities", [("t", "a"), ("t", "v")])
def test_lnln_trains_on_text_with_one_other_modality(modalities):
    model = build("lnln", modalities=modalities, **get_model_class("lnln").TEST_OVERRIDES).train()
    out = model(fake_batch())
    n = model.config.token_length
    assert out.extras["reconstructed"].shape[1] == 2 * n
    terms = {}
    for objective in model.build_objectives(None, "mosi"):
        terms.update(objective(out, fake_batch(), 1))
    assert set(terms) == {"mse_m", "completeness", "effectiveness", "reconstruction"}
    sum(terms.values()).backward()
    assert model.proxy.position.grad is not None


# ---- random missing (LNLN's training protocol) ----------------------------------------------
def test_drop_tokens_keeps_cls_and_sep_drops_the_inside_and_keeps_order():
    from msakit.data.random_missing import drop_tokens

    ids = torch.tensor([[2, 10, 11, 12, 13, 3, 0, 0], [2, 20, 21, 3, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    same_ids, same_mask = drop_tokens(ids, mask, torch.tensor([0.0, 0.0]))
    assert torch.equal(same_ids, ids) and torch.equal(same_mask, mask)
    all_ids, all_mask = drop_tokens(ids, mask, torch.tensor([1.0, 1.0]))
    assert all_mask.tolist() == [[1, 1, 0, 0, 0, 0, 0, 0]] * 2
    assert all_ids[:, :2].tolist() == [[2, 3], [2, 3]] and (all_ids[:, 2:] == 0).all()
    torch.manual_seed(0)
    half_ids, half_mask = drop_tokens(ids.repeat(50, 1), mask.repeat(50, 1), torch.full((100,), 0.5))
    for row, kept in zip(half_ids, half_mask.bool()):
        words = row[kept].tolist()
        assert words[0] == 2 and words[-1] == 3 and words[1:-1] == sorted(words[1:-1])
    inner = mask.repeat(50, 1).sum() - 200
    assert 0.35 < 1 - (half_mask.sum() - 200).item() / inner.item() < 0.65  # about half the inside dropped


def test_drop_frames_zeroes_valid_frames_only_at_the_rate():
    from msakit.data.random_missing import draw_missing_rates, drop_frames

    torch.manual_seed(0)
    frames, lengths = torch.ones(200, 64, 3), torch.full((200,), 60)
    rates = torch.linspace(0, 1, 200)
    dropped = drop_frames(frames, lengths, rates)
    assert (dropped[:, 60:] == 1).all()  # padding untouched
    lost = (dropped[:, :60] == 0).all(dim=-1).float().mean(dim=1)
    assert lost[0] == 0 and lost[-1] == 1
    assert torch.corrcoef(torch.stack([lost, rates]))[0, 1] > 0.9
    drawn = draw_missing_rates(10)
    assert (drawn == 0).sum() >= 5 and ((drawn >= 0) & (drawn < 1)).all()


# ---- the incomplete-data objectives ---------------------------------------------------------
def test_gradient_reversal_flips_the_gradient():
    from msakit.objectives.incomplete import reverse_gradient

    x = torch.tensor([1.0, -2.0], requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.tensor([3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [-1.5, -2.0]


def test_completeness_and_reconstruction_losses_vanish_only_at_the_truth():
    from msakit.models.base import ModelOutput
    from msakit.objectives.incomplete import CompleteReconstruction, CompletenessEstimation

    rate = torch.tensor([0.0, 0.25, 0.5])
    exact = ModelOutput(predictions={}, extras={"completeness": 1 - rate, "dominant_missing_rate": rate})
    off = ModelOutput(predictions={}, extras={"completeness": torch.full((3,), 0.5), "dominant_missing_rate": rate})
    assert CompletenessEstimation(0.9)(exact, None, 1)["completeness"] == 0
    assert CompletenessEstimation(0.9)(off, None, 1)["completeness"] == pytest.approx(0.9 * (0.25 + 0.0625 + 0) / 3)
    c = torch.randn(2, 4, 3)
    assert CompleteReconstruction(0.1)(ModelOutput({}, extras={"reconstructed": c, "complete": c}), None, 1)["reconstruction"] == 0
    assert CompletenessEstimation()(ModelOutput({}), None, 1) == {}  # evaluation: nothing to score


def test_effectiveness_adversary_pushes_the_reversed_generator_towards_the_complete_tokens():
    """One loss trains the discriminator to tell corrected from complete tokens and, through the
    reversal, pushes the generator's tokens towards the complete ones (the distance shrinks)."""
    from msakit.models.base import ModelOutput
    from msakit.objectives.incomplete import EffectivenessAdversarial, reverse_gradient

    torch.manual_seed(0)
    complete = torch.randn(64, 4)
    generated = nn.Parameter(complete + 3.0)
    discriminator = nn.Linear(4, 2)
    loss_fn = EffectivenessAdversarial(1.0)
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=0.05)
    g_opt = torch.optim.Adam([generated], lr=0.05)
    gap = lambda: (generated.mean(0) - complete.mean(0)).norm().item()  # noqa: E731
    start = gap()
    for _ in range(200):
        logits = discriminator(torch.cat([reverse_gradient(generated), complete]))
        loss = loss_fn(ModelOutput({}, extras={"effectiveness_logits": logits}), None, 1)["effectiveness"]
        d_opt.zero_grad(), g_opt.zero_grad()
        loss.backward()
        d_opt.step(), g_opt.step()
    assert gap() < 0.1 * start  # the generated tokens came to the complete ones
    assert loss.item() == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=0.05)  # the discriminator is left guessing


# ---- whole runs: a killed run resumes to the same bytes -------------------------------------
def _config(model, data, tiny_bert_dir, epochs=3, **model_settings):
    from msakit.config import resolve_config

    settings = {"text_encoder": str(tiny_bert_dir), **get_model_class(model).TEST_OVERRIDES, **model_settings}
    return resolve_config(model, data_path=str(data), overrides={
        "model": settings, "train": {"batch_size": 32, "grad_accumulation": 1, "max_epochs": epochs, "early_stop": 100, "progress": False, "num_threads": 1}})


def _killed_at(monkeypatch, epoch_to_die: int):
    """Make Trainer.train_epoch raise at its ``epoch_to_die``-th call overall (counting every stage)."""
    from msakit.training.trainer import Trainer

    original, calls = Trainer.train_epoch, []

    def dying(self, epoch):
        calls.append((self.run_dir.name, epoch))
        if len(calls) == epoch_to_die:
            raise KeyboardInterrupt("simulated kill")
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", dying)
    return lambda: monkeypatch.setattr(Trainer, "train_epoch", original)


def test_lnln_killed_run_resumes_to_the_same_bytes(small_synthetic, tiny_bert_dir, tmp_path, monkeypatch):
    from msakit.training.trainer import Trainer

    config = _config("lnln", small_synthetic, tiny_bert_dir)
    Trainer(config, tmp_path / "straight").fit()
    restore = _killed_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, tmp_path / "killed").fit()
    restore()
    Trainer(config, tmp_path / "killed").fit(resume=True)
    for name in ("test_predictions.csv", "metrics.jsonl"):
        straight, killed = (tmp_path / "straight" / name).read_text(), (tmp_path / "killed" / name).read_text()
        if name == "metrics.jsonl":  # timings differ; everything learned must not
            strip = lambda text: [{k: v for k, v in json.loads(line).items() if "second" not in k and "per_s" not in k}  # noqa: E731
                                  for line in text.splitlines()]
            straight, killed = strip(straight), strip(killed)
        assert straight == killed, name
