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


class StubBackbone(nn.Module):
    """A BERT-shaped backbone: ``layers`` hidden states after the embeddings."""

    def __init__(self, embedding: nn.Embedding, layers: int):
        super().__init__()
        from types import SimpleNamespace

        self.embedding, self.config = embedding, SimpleNamespace(num_hidden_layers=layers, pad_token_id=0)

    def forward(self, input_ids, attention_mask, output_hidden_states=False):
        from types import SimpleNamespace

        x = self.embedding(input_ids)
        states = tuple(torch.tanh(x * (i + 1)) for i in range(self.config.num_hidden_layers + 1))
        return SimpleNamespace(hidden_states=states, last_hidden_state=states[-1])


class StubText(nn.Module):
    """Stands in for a text encoder of width ``hidden`` (its parameters are not counted)."""

    def __init__(self, hidden: int, layers: int = 12):
        super().__init__()
        self.hidden_size = hidden
        self.proj = nn.Embedding(64, hidden)
        self.backbone = StubBackbone(self.proj, layers)

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


def ref_kuda(d_t, d_a, d_v, lengths=(50, 375, 500), enc=128, hidden=256, ffn=512, fusion_layers=3) -> nn.Module:
    """KMSA without BERT: UnimodalEncoder (enc_t/enc_v/enc_a = UniPretrain: UniEncoder with
    MixDomainAdapters + Classifier), DyRoutTrans (length/dimension alignment, 3 blocks), SentiCLS."""

    def adapter(up):  # MixDomainAdapter
        down = up // 2
        return nn.ModuleList([nn.Linear(up, down), nn.Linear(down, up),
                              nn.TransformerEncoder(nn.TransformerEncoderLayer(down, 4, down // 2, batch_first=True), 2, enable_nested_tensor=False)])

    def classifier(k):  # Classifier(2k, [k/2, k/4, k/8], 1)
        return nn.Sequential(nn.Linear(2 * k, k // 2), nn.Linear(k // 2, k // 4), nn.Linear(k // 4, k // 8), nn.Linear(k // 8, 1))

    def uni_av(fea, patches):
        m = nn.Module()
        m.proj = nn.Linear(fea, enc)
        m.position_embeddings = nn.Parameter(torch.zeros(1, patches, enc))
        m.tfencoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(enc, 8, enc // 2, batch_first=True), 4, enable_nested_tensor=False)
        m.adapters = nn.ModuleList(adapter(enc) for _ in range(3))
        m.layernorm = nn.LayerNorm(enc)
        m.decoder = classifier(enc)
        return m

    def attention(dim):  # MultiHAtten(dim, 8, 64)
        return nn.ModuleList([nn.Linear(dim, 512, bias=False) for _ in range(3)] + [nn.Linear(512, dim)])

    def feed_forward(dim, mlp):
        return nn.ModuleList([nn.LayerNorm(dim), nn.Linear(dim, mlp), nn.Linear(mlp, dim)])

    def cross(dim, mlp):
        return nn.ModuleList([attention(dim), nn.LayerNorm(dim), nn.LayerNorm(dim), feed_forward(dim, mlp)])

    ref = nn.Module()
    ref.enc_t = nn.ModuleList([nn.ModuleList(adapter(d_t) for _ in range(4)), nn.LayerNorm(d_t), classifier(d_t)])
    ref.enc_v, ref.enc_a = uni_av(d_v, lengths[2]), uni_av(d_a, lengths[1])
    ref.len = nn.ModuleList([nn.Linear(lengths[0], lengths[0]), nn.Linear(lengths[2], lengths[0]), nn.Linear(lengths[1], lengths[0])])
    ref.dim = nn.ModuleList([nn.Linear(2 * d_t, hidden), nn.Linear(2 * enc, hidden), nn.Linear(2 * enc, hidden)])
    ref.blocks = nn.ModuleList(
        nn.ModuleList([nn.ModuleList([cross(hidden, ffn) for _ in range(3)]), nn.ModuleList(nn.LayerNorm(hidden) for _ in range(4)),
                       attention(hidden), feed_forward(hidden, ffn), nn.ModuleList(nn.LayerNorm(hidden) for _ in range(3))])
        for _ in range(fusion_layers)
    )
    ref.cls = nn.Sequential(nn.Linear(hidden, 64), nn.Linear(64, 32), nn.Linear(32, 1))
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
    for _ in range(150):
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


# ---- KuDA ------------------------------------------------------------------------------------
def _all_but_text(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("text_model."))


def test_kuda_parameter_count_equals_the_reference_for_mosi():
    reference = ref_kuda(MOSI["text"], MOSI["audio"], MOSI["vision"])
    assert n_params(reference) == 20_212_932  # recorded in kuda.py's docstring
    model = build("kuda")
    assert _all_but_text(model) == n_params(reference)
    # Stage 2 freezes the knowledge (adapters and decoders), as OverallModal.preprocess_model.
    frozen = sum(p.numel() for n, p in reference.named_parameters() if "adapters" in n or "decoder" in n or n.startswith(("enc_t.0", "enc_t.2")))
    assert _all_but_text(model) - without_text(model) == frozen == 9_364_739
    assert without_text(build("kuda", knowledge_pretraining=False)) == n_params(reference)


def test_kuda_parameter_count_follows_the_sims_lengths():
    sims = get_model_class("kuda").DATASET_DEFAULTS["sims"]["model"]
    assert _all_but_text(build("kuda", **sims)) == n_params(ref_kuda(768, 5, 20, lengths=(39, 400, 55)))


@pytest.mark.parametrize("modalities", [("t",), ("a", "v"), ("v",)])
def test_kuda_refuses_modality_sets_without_text_and_a_second_modality(modalities):
    with pytest.raises(MsakitError, match="KuDA fuses.*t,a,v"):
        build("kuda", modalities=modalities)


def test_kuda_output_shapes_and_a_batch_independent_prediction():
    torch.manual_seed(0)
    model = build("kuda", **get_model_class("kuda").TEST_OVERRIDES).eval()
    batch = fake_batch()
    out = model(batch)
    assert {k: tuple(v.shape) for k, v in out.predictions.items()} == {"m": (4,), "t": (4,), "a": (4,), "v": (4,)}
    assert out.features["m"].shape == (4, model.config.fusion_dim) and out.extras == {}
    # Every sequence is brought to its fixed length: the first sample alone predicts the same.
    alone = Batch(index=batch.index[:1], labels={"m": batch.labels["m"][:1]}, text_ids=batch.text_ids[:1], text_mask=batch.text_mask[:1],
                  audio=batch.audio[:1, :9], audio_lengths=batch.audio_lengths[:1], vision=batch.vision[:1], vision_lengths=batch.vision_lengths[:1])
    torch.testing.assert_close(model(alone).predictions["m"], out.predictions["m"][:1])


def test_kuda_sentiment_ratio_gives_the_modality_nearest_the_label_the_largest_share():
    from msakit.models.kuda import sentiment_ratio

    unimodal = {"t": torch.tensor([1.0, -2.0]), "a": torch.tensor([0.0, 0.0]), "v": torch.tensor([-1.0, 2.5])}
    ratio = sentiment_ratio(unimodal, torch.tensor([0.9, 2.0]), k=0.1)
    torch.testing.assert_close(sum(ratio.values()), torch.ones(2))
    assert max(ratio, key=lambda s: ratio[s][0]) == "t" and max(ratio, key=lambda s: ratio[s][1]) == "v"  # per sample
    sharper = sentiment_ratio(unimodal, torch.tensor([0.9, 2.0]), k=2.0)
    assert sharper["t"][0] > ratio["t"][0]


def test_kuda_routing_is_the_reference_s_layernormed_ratio_in_training_and_a_plain_sum_in_evaluation():
    """As DyRout_block: training combines LN(Σ LN_s(c_s + r_s·c_s)), evaluation LN(Σ c_s). LN_s
    undoes the ratio's scaling (up to its eps), so the label hardly moves the training forward;
    the two paths differ by the per-modality LayerNorms' learned affine (documented in kuda.py)."""
    torch.manual_seed(0)
    model = build("kuda", **{**get_model_class("kuda").TEST_OVERRIDES, "encoder_dropout": 0.0, "adapter_dropout": 0.0, "fusion_dropout": 0.0})
    batch, other = fake_batch(), fake_batch()
    other.labels["m"] = other.labels["m"] + 3.0
    model.train()
    out = model(batch)
    assert set(out.extras["ratio"]) == {"t", "a", "v"} and set(out.extras["cpc"]) == {"t", "a", "v"}
    assert not torch.allclose(out.extras["ratio"]["t"], model(other).extras["ratio"]["t"])  # the ratio follows the label
    torch.testing.assert_close(model(other).predictions["m"], out.predictions["m"], atol=1e-4, rtol=0)  # ... and LN undoes it
    model.eval()  # no label is read in evaluation: the plain sum
    assert torch.equal(model(other).predictions["m"], model(batch).predictions["m"])
    torch.testing.assert_close(model(batch).predictions["m"], out.predictions["m"])  # at the start LN_s(c_s) = c_s (c_s is LayerNorm-ed) ...
    with torch.no_grad():
        model.fusion[0].norms["t"].bias.copy_(torch.randn(model.config.fusion_dim))  # ... once training moves LN_s, evaluation (which skips it) differs
    evaluated = model(batch).predictions["m"]
    assert not torch.allclose(model.train()(batch).predictions["m"], evaluated, atol=1e-4)


def test_kuda_trains_its_knowledge_stages_inside_one_run_and_records_them(small_synthetic, tiny_bert_dir, tmp_path, monkeypatch):
    from msakit.models.kuda import KuDA
    from msakit.training.checkpoint import load_model
    from msakit.training.trainer import Trainer

    adopted = {}
    original = KuDA.adopt_pretrained

    def recording(self, name, model):
        adopted[name] = {k: v.clone() for k, v in model.decoders[model.config.stage].state_dict().items()}
        return original(self, name, model)

    monkeypatch.setattr(KuDA, "adopt_pretrained", recording)
    Trainer(_config("kuda", small_synthetic, tiny_bert_dir, epochs=2), tmp_path / "run").fit()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    stages = results["stages"]
    assert list(stages) == ["knowledge_t", "knowledge_v", "knowledge_a"]
    for s in ("t", "v", "a"):  # each learned its modality's planted unimodal label, as a run of its own
        stage = stages[f"knowledge_{s}"]
        assert stage["label"] == s and stage["epochs_run"] == 1 and set(stage["metrics"]) >= {"MAE", "Corr"}
        saved = json.loads((tmp_path / "run" / f"stage_knowledge_{s}" / "config.json").read_text())
        assert saved["data"]["modalities"] == [s] and saved["model_config"]["stage"] == s
        assert not (tmp_path / "run" / f"stage_knowledge_{s}" / "best").exists()  # its weights live in the run's model
    final = load_model(tmp_path / "run")[0]
    for s in ("t", "v", "a"):  # the knowledge stayed frozen through stage 2
        for k, v in final.decoders[s].state_dict().items():
            assert torch.equal(v, adopted[f"knowledge_{s}"][k]), (s, k)
    assert results["epochs_run"] == 2


def test_kuda_killed_in_a_knowledge_stage_and_in_the_main_stage_resumes_each_where_it_was(small_synthetic, tiny_bert_dir, tmp_path, monkeypatch):
    """Through ``msakit.train(..., resume=True)`` (what ``msakit train --resume`` calls)."""
    import msakit
    from msakit.training.trainer import Trainer

    settings = {"text_encoder": str(tiny_bert_dir), **get_model_class("kuda").TEST_OVERRIDES, "knowledge_epochs_t": 2, "knowledge_epochs_a": 2,
                "knowledge_epochs_v": 2}
    overrides = {"model": settings, "train": {"batch_size": 32, "grad_accumulation": 1, "max_epochs": 2, "early_stop": 100, "progress": False,
                                              "num_threads": 1}}
    train = lambda name, resume=False: msakit.train("kuda", small_synthetic, run_dir=tmp_path / name, overrides=overrides, resume=resume)  # noqa: E731
    train("straight")
    run = tmp_path / "killed" / "seed_1111"
    restore = _killed_at(monkeypatch, 4)  # t: epochs 1, 2; v: epoch 1, then killed in v's epoch 2
    with pytest.raises(KeyboardInterrupt):
        train("killed")
    restore()
    assert (run / "stage_knowledge_t" / "results.json").exists() and (run / "stage_knowledge_v" / "last.pt").exists()
    assert not (run / "stage_knowledge_a").exists() and not (run / "config.json").exists()
    calls = []
    original = Trainer.train_epoch

    def counting(self, epoch):
        calls.append((self.run_dir.name, epoch))
        if len(calls) == 4:  # v: 2; a: 1, 2; then the main stage's first epoch: killed there
            raise KeyboardInterrupt("simulated kill")
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", counting)
    with pytest.raises(KeyboardInterrupt):
        train("killed", resume=True)
    assert calls == [("stage_knowledge_v", 2), ("stage_knowledge_a", 1), ("stage_knowledge_a", 2), ("seed_1111", 1)]
    calls.clear()
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch: (calls.append((self.run_dir.name, epoch)), original(self, epoch))[1])
    train("killed", resume=True)
    assert calls == [("seed_1111", 1), ("seed_1111", 2)]  # the main stage had not finished an epoch: it starts again, stages kept
    straight = tmp_path / "straight" / "seed_1111"
    assert (run / "test_predictions.csv").read_text() == (straight / "test_predictions.csv").read_text()
    assert json.loads((run / "results.json").read_text())["stages"] == json.loads((straight / "results.json").read_text())["stages"]
