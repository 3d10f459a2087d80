"""ULGM follows the Self-MM formulas and order of operations."""

import numpy as np
import torch

from msakit.data.batching import Batch
from msakit.models.base import ModelOutput
from msakit.objectives.ulgm import EPS, ULGM


def _step(ulgm, index, features, predictions, epoch):
    batch = Batch(index=torch.tensor(index), labels={"m": ulgm.y_m[torch.tensor(index)]})
    output = ModelOutput(predictions=predictions, features=features)
    terms = ulgm(output, batch, epoch)
    ulgm.after_step(output, batch, epoch)
    return terms


def test_epoch_one_trains_only_fusion_and_leaves_labels_at_y_m():
    y = np.array([1.5, -2.0, 0.0, 0.7], dtype=np.float32)
    ulgm = ULGM(y, {"m": 2, "a": 2}, ("a",))
    feats = {"m": torch.randn(4, 2), "a": torch.randn(4, 2)}
    terms = _step(ulgm, [0, 1, 2, 3], feats, {"a": torch.randn(4, requires_grad=True)}, epoch=1)
    assert float(terms["ulgm_a"].detach()) == 0.0  # w_a = tanh(|label - y_m|) = 0
    assert torch.equal(ulgm.labels("a"), torch.tensor(y))
    # ...but the memory and centres were filled in epoch 1.
    torch.testing.assert_close(ulgm.memory_a, feats["a"])
    torch.testing.assert_close(ulgm.centre_pos_a, feats["a"][[0, 3]].mean(0))  # 0.0 excluded (> 0)
    torch.testing.assert_close(ulgm.centre_neg_a, feats["a"][[1]].mean(0))


def test_zero_is_positive_switch():
    y = np.array([1.0, 0.0, -1.0], dtype=np.float32)
    ulgm = ULGM(y, {"m": 1, "t": 1}, ("t",), zero_is_positive=True)
    feats = {"m": torch.tensor([[1.0], [3.0], [5.0]]), "t": torch.tensor([[1.0], [3.0], [5.0]])}
    _step(ulgm, [0, 1, 2], feats, {"t": torch.zeros(3)}, epoch=1)
    torch.testing.assert_close(ulgm.centre_pos_t, torch.tensor([2.0]))


def test_label_update_matches_the_formula_with_centres_from_before_the_batch():
    y = np.array([2.0, -1.0, 1.0], dtype=np.float32)
    ulgm = ULGM(y, {"m": 2, "v": 2}, ("v",), bound=3.0)
    torch.manual_seed(0)
    _step(ulgm, [0, 1, 2], {"m": torch.randn(3, 2), "v": torch.randn(3, 2)}, {"v": torch.zeros(3)}, epoch=1)
    c = {k: getattr(ulgm, k).clone() for k in ("centre_pos_m", "centre_neg_m", "centre_pos_v", "centre_neg_v")}
    f_m, f_v = torch.randn(2, 2), torch.randn(2, 2)
    index = [2, 0]
    before = ulgm.labels("v").clone()
    _step(ulgm, index, {"m": f_m, "v": f_v}, {"v": torch.zeros(2)}, epoch=3)

    def delta(f, pos, neg):
        dp, dn = (f - pos).norm(dim=-1), (f - neg).norm(dim=-1)
        return (dn - dp) / (dp + EPS)

    y_b = torch.tensor(y)[index]
    d_m = delta(f_m, c["centre_pos_m"], c["centre_neg_m"])
    d_v = delta(f_v, c["centre_pos_v"], c["centre_neg_v"])
    candidate = (0.5 * (d_v / (d_m + EPS)) * y_b + 0.5 * (y_b + d_v - d_m)).clamp(-3, 3)
    expected = 2 / 4 * before[index] + 2 / 4 * candidate  # n = 3: (n-1)/(n+1), 2/(n+1)
    torch.testing.assert_close(ulgm.labels("v")[index], expected)
    assert ulgm.labels("v")[1] == before[1]  # samples outside the batch untouched
    # memory now holds the new features and the centres were recomputed from it
    torch.testing.assert_close(ulgm.memory_v[index], f_v)


def test_generated_labels_are_bounded_and_weighted_loss_uses_them():
    y = np.array([2.9, -2.9], dtype=np.float32)
    ulgm = ULGM(y, {"m": 1, "a": 1}, ("a",), bound=1.0)
    ulgm.label_a.copy_(torch.tensor([0.5, -0.5]))
    terms = ulgm(ModelOutput({"a": torch.tensor([0.5, 0.0])}, {}), Batch(index=torch.tensor([0, 1]), labels={}), epoch=2)
    expected = (np.tanh(0.0) * 0 + np.tanh(2.4) * 0.5) / 2
    assert abs(float(terms["ulgm_a"]) - expected) < 1e-6
    _step(ulgm, [0, 1], {"m": torch.tensor([[5.0], [-5.0]]), "a": torch.tensor([[100.0], [-100.0]])}, {"a": torch.zeros(2)}, epoch=1)
    _step(ulgm, [0, 1], {"m": torch.tensor([[5.0], [-5.0]]), "a": torch.tensor([[100.0], [-100.0]])}, {"a": torch.zeros(2)}, epoch=2)
    assert float(ulgm.labels("a").abs().max()) <= 1.0 + 1e-6


def _state(ulgm) -> dict:
    return {k: v.clone() for k, v in ulgm.state_dict().items()}


def _absent_step(ulgm, index, features, predictions, epoch, absent):
    batch = Batch(index=torch.tensor(index), labels={"m": ulgm.y_m[torch.tensor(index)]},
                  absent={m: torch.tensor(a) for m, a in absent.items()})
    output = ModelOutput(predictions=predictions, features=features)
    terms = ulgm(output, batch, epoch)
    ulgm.after_step(output, batch, epoch)
    return terms


def _warm(skip_absent=True, seed=0):
    torch.manual_seed(seed)
    y = np.array([1.5, -2.0, 0.4, 0.7, -0.3, 2.2], dtype=np.float32)
    ulgm = ULGM(y, {"m": 3, "a": 3, "v": 3}, ("a", "v"), skip_absent=skip_absent)
    feats = {s: torch.randn(6, 3) for s in "mav"}
    _step(ulgm, list(range(6)), feats, {s: torch.randn(6) for s in "av"}, epoch=1)
    _step(ulgm, list(range(6)), {s: torch.randn(6, 3) for s in "mav"}, {s: torch.randn(6) for s in "av"}, epoch=2)
    return ulgm


def test_a_modality_withheld_in_every_sample_changes_no_label_memory_or_centre_of_it():
    ulgm = _warm()
    before = _state(ulgm)
    feats = {s: torch.randn(3, 3) + 5 for s in "mav"}
    preds = {s: torch.randn(3, requires_grad=True) for s in "av"}
    terms = _absent_step(ulgm, [0, 2, 4], feats, preds, epoch=3, absent={"v": [True, True, True]})
    after = _state(ulgm)
    for key in ("label_v", "memory_v", "centre_pos_v", "centre_neg_v"):
        assert torch.equal(before[key], after[key]), key
    assert float(terms["ulgm_v"].detach()) == 0.0
    terms["ulgm_v"].backward()
    assert torch.count_nonzero(preds["v"].grad) == 0  # no gradient from the withheld modality
    for key in ("label_a", "memory_a", "memory_m"):  # audio was there: its state moved
        assert not torch.equal(before[key], after[key]), key


def test_a_partly_withheld_modality_updates_only_the_samples_that_had_it():
    ulgm = _warm()
    before = _state(ulgm)
    feats = {s: torch.randn(3, 3) + 5 for s in "mav"}
    _absent_step(ulgm, [0, 2, 4], feats, {s: torch.randn(3) for s in "av"}, epoch=3, absent={"a": [False, True, False]})
    after = _state(ulgm)
    assert torch.equal(after["memory_a"][2], before["memory_a"][2]) and after["label_a"][2] == before["label_a"][2]
    assert torch.equal(after["memory_a"][[0, 4]], feats["a"][[0, 2]])
    assert not torch.equal(after["label_a"][[0, 4]], before["label_a"][[0, 4]])


def test_the_published_form_lets_a_withheld_modality_update_everything():
    ulgm = _warm(skip_absent=False)
    before = _state(ulgm)
    feats = {s: torch.randn(3, 3) + 5 for s in "mav"}
    _absent_step(ulgm, [0, 2, 4], feats, {s: torch.randn(3) for s in "av"}, epoch=3, absent={"v": [True, True, True]})
    assert torch.equal(ulgm.memory_v[[0, 2, 4]], feats["v"]) and not torch.equal(before["label_v"], ulgm.label_v)


def test_with_nothing_withheld_the_switch_changes_nothing_bit_for_bit():
    states, losses = [], []
    for skip in (True, False):
        ulgm = _warm(skip_absent=skip, seed=3)
        torch.manual_seed(9)
        feats = {s: torch.randn(4, 3) for s in "mav"}
        preds = {s: torch.randn(4) for s in "av"}
        terms = _absent_step(ulgm, [1, 2, 3, 5], feats, preds, epoch=3, absent={"a": [False] * 4, "v": [False] * 4})
        states.append(_state(ulgm))
        losses.append({k: v.detach().clone() for k, v in terms.items()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert all(torch.equal(losses[0][k], losses[1][k]) for k in losses[0])
