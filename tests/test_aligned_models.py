"""The word-aligned incumbents (MFN, MCTN, ...) against the reference structure (MMSA 2.2.1) and
their own promises.

Reference counts are built from the reference files' layer lists (``models/singleTask/MFN.py``,
``MCTN.py``), layer by layer, with MOSI's aligned feature sizes (text 768, audio 5, vision
20). The reference reads fixed 768-d text features; the comparison uses a parameter-free
stand-in encoder returning 768-d states, so the trainable parameters must be the reference's.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from msakit.data.batching import Batch
from msakit.encoders.aligned import lstm_with_cells
from test_baselines import FixedTextFeatures, _linear, _lstm, _model, _trainable

from msakit.models import InputDims


def _mlp(i, h, o):
    return _linear(i, h) + _linear(h, o)


def reference_mfn(d, hidden, memory, att1, att2, gamma1, gamma2, out):
    total = sum(hidden)
    lstms = sum(_lstm(i, h) for i, h in zip(d, hidden))
    window = 2 * total  # windowsize 2
    return lstms + _mlp(window, att1, window) + _mlp(window, att2, memory) + _mlp(window + memory, gamma1, memory) + _mlp(window + memory, gamma2, memory) + _mlp(total + memory, out, 1)


def reference_mctn(d, hid):
    encoder = 2 * _lstm(d, hid) + hid * hid  # bidirectional LSTM + Linear(hid, hid, bias=False)
    attention = 2 * hid * hid + hid
    decoder = 2 * _lstm(d + hid, hid) + _linear(2 * hid, d)
    encoder2 = 2 * _lstm(hid, hid) + hid * hid
    regression = _lstm(hid, hid) + 2 * _linear(hid, 1)
    return encoder + 2 * attention + 2 * decoder + encoder2 + regression


def test_parameter_counts_equal_the_reference_structure():
    dims = InputDims(("t", "a", "v"), 5, 20)
    with torch.device("meta"):
        mfn, c = _model("mfn", "mosi", dims)
        expected = reference_mfn((768, 5, 20), (c.text_hidden, c.audio_hidden, c.video_hidden), c.memory_dim, c.attention_hidden, c.proposal_hidden,
                                 c.gamma1_hidden, c.gamma2_hidden, c.out_hidden)
        assert _trainable(mfn) == expected == 2_172_657  # the number in the model's docstring
        mctn, c = _model("mctn", "mosi", dims)
        assert _trainable(mctn) == reference_mctn(768, c.hidden) == 763_778


def _aligned_batch(lengths=(9, 6, 12), audio_dim=5, vision_dim=20, seed=0):
    """Word-aligned: audio and vision have one frame per token, lengths = the text mask's."""
    g = torch.Generator().manual_seed(seed)
    b, width = len(lengths), max(lengths)
    n = torch.tensor(lengths)
    mask = (torch.arange(width)[None] < n[:, None]).long()
    valid = mask[..., None].float()
    return Batch(
        index=torch.arange(b), labels={"m": torch.zeros(b)}, text_ids=mask * (torch.arange(width)[None] % 5 + 3), text_mask=mask,
        audio=torch.randn(b, width, audio_dim, generator=g) * valid, audio_lengths=n, vision=torch.randn(b, width, vision_dim, generator=g) * valid, vision_lengths=n,
    )


def test_lstm_cells_match_a_step_by_step_lstm_cell():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(7, 5, batch_first=True)
    cell = torch.nn.LSTMCell(7, 5)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in lstm.state_dict().items()})
    x = torch.randn(3, 6, 7)
    hs, cs = lstm_with_cells(lstm, x)
    h = c = torch.zeros(3, 5)
    for t in range(6):
        h, c = cell(x[:, t], (h, c))
        torch.testing.assert_close(hs[:, t], h)
        torch.testing.assert_close(cs[:, t], c)


@pytest.mark.parametrize("name", ["mfn", "mctn"])
def test_a_sample_gets_the_same_prediction_alone_as_in_a_padded_batch(name):
    small = {"mfn": {"text_hidden": 8, "video_hidden": 8, "memory_dim": 8, "gamma1_hidden": 8}, "mctn": {"hidden": 8}}[name]
    model, _ = _model(name, text=16, **small)
    model.eval()
    batch = _aligned_batch()
    with torch.no_grad():
        together = model(batch).predictions["m"]
        for i in range(3):
            n = int(batch.text_mask[i].sum())
            alone = dataclasses.replace(
                batch, index=batch.index[i : i + 1], labels={"m": batch.labels["m"][i : i + 1]}, text_ids=batch.text_ids[i : i + 1, :n], text_mask=batch.text_mask[i : i + 1, :n],
                audio=batch.audio[i : i + 1, :n], audio_lengths=batch.audio_lengths[i : i + 1], vision=batch.vision[i : i + 1, :n], vision_lengths=batch.vision_lengths[i : i + 1],
            )
            torch.testing.assert_close(model(alone).predictions["m"], together[i : i + 1], rtol=1e-4, atol=1e-5)


def test_mfn_reads_every_modality_and_supports_subsets():
    model, _ = _model("mfn", text=16, text_hidden=8, video_hidden=8, memory_dim=8, gamma1_hidden=8)
    model.eval()
    batch = _aligned_batch()
    noisy = dataclasses.replace(batch, vision=batch.vision * 3.0)
    with torch.no_grad():
        assert not torch.allclose(model(noisy).predictions["m"], model(batch).predictions["m"])
    for dims in (InputDims(("t",)), InputDims(("a", "v"), 5, 20)):
        subset, _ = _model("mfn", dims=dims, text=16, text_hidden=8, video_hidden=8, memory_dim=8, gamma1_hidden=8)
        assert subset.eval()(batch).predictions["m"].shape == (3,)


def test_mctn_predicts_from_text_alone_at_test_time_and_translates_in_training():
    model, _ = _model("mctn", text=16, hidden=8)
    batch = _aligned_batch()
    silent = dataclasses.replace(batch, audio=torch.zeros_like(batch.audio), vision=torch.randn_like(batch.vision))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(silent).predictions["m"], model(batch).predictions["m"])
        assert model(batch).extras == {}  # no decoders at test time
    model.train()
    out = model(batch)
    assert set(out.extras["reconstructed"]) == {"t", "a", "v"}  # text -> vision -> text cycle, joint -> audio
    objectives = model.build_objectives(None, "mosi")
    terms = {}
    for objective in objectives:
        terms.update(objective(out, batch, 0))
    assert set(terms) == {"l1_m", "recon_v", "recon_t", "recon_a"} and all(torch.isfinite(v) for v in terms.values())
    terms["recon_v"].backward()
    assert model.decoder1.fc_out.weight.grad.abs().sum() > 0


def reference_mfm(d, hidden, memory, att1, att2, gamma1, gamma2, out, z, f, zy, fy):
    """MMSA's MFM: its MFN (with the output layers MFM never calls), encoders, decoders, factor nets."""
    mfn = reference_mfn(d, hidden, memory, att1, att2, gamma1, gamma2, out)
    encoders = sum(_lstm(i, h) + _linear(h, h) for i, h in zip(d, z))
    decoders = sum(_lstm(fy + fs, fy + fs) + _linear(fy + fs, i) for i, fs in zip(d, f))
    factors = sum(_mlp(zs, fs, fs) for zs, fs in zip(z, f)) + _mlp(zy, fy, fy)
    return mfn + encoders + decoders + _linear(sum(hidden) + memory, zy) + factors + _mlp(fy, fy, 1)


def test_mfm_parameter_count_is_the_reference_without_its_unused_mfn_head():
    dims = InputDims(("t", "a", "v"), 5, 20)
    with torch.device("meta"):
        mfm, c = _model("mfm", "mosi", dims)
    hidden = (c.text_hidden, c.audio_hidden, c.video_hidden)
    unused_head = _mlp(sum(hidden) + c.memory_dim, 128, 1)  # the MFN's out_fc1/out_fc2 (outConfig shapes 128)
    reference = reference_mfm((768, 5, 20), hidden, c.memory_dim, c.attention_hidden, c.proposal_hidden, c.gamma1_hidden, c.gamma2_hidden, 128,
                              (c.zt_size, c.za_size, c.zv_size), (c.ft_size, c.fa_size, c.fv_size), c.zy_size, c.fy_size)
    assert _trainable(mfm) == reference - unused_head
    assert (reference, unused_head, _trainable(mfm)) == (1_416_123, 45_313, 1_370_810)  # the numbers in the model's docstring


def test_mfm_regenerates_every_modality_in_training_and_matches_codes_to_the_prior():
    model, _ = _model("mfm", text=16, text_hidden=8, video_hidden=8, zy_size=8, zt_size=8, za_size=8, zv_size=8, fy_size=8, ft_size=8, fv_size=8)
    batch = _aligned_batch()
    model.train()
    out = model(batch)
    assert {s: tuple(x.shape) for s, x in out.extras["reconstructed"].items()} == {"t": (3, 12, 16), "a": (3, 12, 5), "v": (3, 12, 20)}
    assert set(out.extras["latents"]) == {"y", "t", "a", "v"}
    terms = {}
    for objective in model.build_objectives(None, "mosi"):
        terms.update(objective(out, batch, 0))
    assert set(terms) == {"l1_m", "recon_t", "recon_a", "recon_v", "mmd"} and all(torch.isfinite(v) for v in terms.values())
    model.eval()
    assert model(batch).extras == {}


def reference_graph_mfn(d, hidden, memory, node, proposal, gamma1, gamma2, out):
    """MMSA's Graph_MFN for three modalities: LSTMs, singleton transforms, the DFG (three
    pair vertices, the triple vertex, the top vertex, the efficacy net), memory, output."""
    lstms = sum(_lstm(i, h) for i, h in zip(d, hidden))
    singletons = sum(_linear(2 * h, h) for h in hidden)
    pairs = sum(_linear(hidden[i] + hidden[j], 100) for i, j in ((0, 1), (0, 2), (1, 2))) + 3 * _linear(100, node)
    triple = _linear(sum(hidden) + 3 * node, 100) + _linear(100, node)
    top = _linear(sum(hidden) + 4 * node, 100) + _linear(100, node)
    efficacy = _linear(sum(hidden), 100) + _linear(100, node) + _linear(node, 19)
    gates = _mlp(node, proposal, memory) + _mlp(node + memory, gamma1, memory) + _mlp(node + memory, gamma2, memory)
    return lstms + singletons + pairs + triple + top + efficacy + gates + _mlp(sum(hidden) + memory, out, 1)


def test_graph_mfn_parameter_count_equals_the_reference_structure():
    with torch.device("meta"):
        model, c = _model("graph_mfn", "mosi", InputDims(("t", "a", "v"), 5, 20))
    expected = reference_graph_mfn((768, 5, 20), (c.text_hidden, c.audio_hidden, c.video_hidden), c.memory_dim, c.node_dim, c.proposal_hidden,
                                   c.gamma1_hidden, c.gamma2_hidden, c.out_hidden)
    assert _trainable(model) == expected == 2_319_280  # the number in the model's docstring


def test_graph_mfn_fuses_two_or_three_modalities_and_refuses_one():
    from msakit.errors import ConfigError

    batch = _aligned_batch()
    for dims in (InputDims(("t", "a", "v"), 5, 20), InputDims(("t", "v"), None, 20), InputDims(("a", "v"), 5, 20)):
        model, _ = _model("graph_mfn", dims=dims, text=16, text_hidden=8, video_hidden=8, memory_dim=8, node_dim=8)
        assert model.eval()(batch).predictions["m"].shape == (3,)
    assert model.graph.efficacy[-1].out_features == 5  # two modalities: 2 into the pair vertex, 3 (both singletons, the pair) into the top
    with pytest.raises(ConfigError, match="two or three modalities"):
        _model("graph_mfn", dims=InputDims(("t",)), text=16)
