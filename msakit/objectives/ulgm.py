"""ULGM: Self-MM's unimodal label generation module (Yu et al., AAAI 2021), and its loss.

State over the training split, indexed by each sample's position (so shuffling is safe):
``label[s][i]`` for s in {t, a, v}, initialised to ``y_m[i]``; ``memory[s][i]`` for s in
{m, t, a, v}, the latest detached feature ``F_s`` of sample i (zeros at start); and the
positive/negative class centres of each memory.

Loss, for each unimodal task s:  ``mean( w_s · |ŷ_s − label[s]| )``, ``w_s = tanh(|label[s] − y_m|)``.
Every ``w_s`` is 0 in epoch 1 (labels start at ``y_m``), so only the fusion task trains then.

After each step (``after_step``), in this order:
1. from epoch 2, with the centres from *before* this batch and ``eps = 1e-8``:
   ``d_p = ‖F_s − C_pos[s]‖``, ``d_n = ‖F_s − C_neg[s]‖``, ``δ_s = (d_n − d_p) / (d_p + eps)``,
   ``α_s = δ_s / (δ_m + eps)``,
   ``ŷ_s = clamp(0.5·α_s·y_m + 0.5·(y_m + δ_s − δ_m), −H, H)``,
   ``label[s] ← (n−1)/(n+1)·label[s] + 2/(n+1)·ŷ_s`` in epoch n (1-based);
2. write the batch's features into the memory;
3. recompute the centres: mean memory over samples whose label (``y_m`` for m) is > 0
   (``>= 0`` with ``zero_is_positive``) and < 0.

Withheld modalities (``skip_absent``; ``batch.absent`` under modality dropout): a
sample whose modality s was withheld in this step has no ``F_s`` to learn from, so its loss term
for s is zero, and its ``label[s]`` and ``memory[s]`` are left as they were (so the centres of s
move only through samples that had s). ``skip_absent=False`` is the published form (the
withheld sample's all-zero-input feature updates everything); on batches with nothing withheld
both are the same computation, bit for bit.

When the data carries annotated unimodal labels (CH-SIMS's ``label_T/_A/_V``, the MMSA keys
``regression_labels_T/_A/_V``; the synthetic data's planted ones), ``compare_with_annotated``
scores the generated labels against them over the training split: MAE, Pearson correlation and
sign agreement (the kind's Acc-2 split), beside the same scores of ``y_m``, the label every
generated one starts from (so a reader sees whether ULGM moved towards the annotation or away).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from msakit.metrics import regression_metrics

EPS = 1e-8


class ULGM(nn.Module):
    def __init__(
        self,
        multimodal_labels: np.ndarray,
        feature_dims: dict[str, int],
        modalities: tuple[str, ...],
        bound: float = 3.0,
        zero_is_positive: bool = False,
        skip_absent: bool = True,
    ):
        super().__init__()
        if "m" not in feature_dims or any(s not in feature_dims for s in modalities):
            raise ValueError(f"ULGM needs feature sizes for m and {modalities}, got {sorted(feature_dims)}")
        self.modalities = tuple(modalities)
        self.bound = float(bound)
        self.zero_is_positive = zero_is_positive
        self.skip_absent = bool(skip_absent)
        y_m = torch.as_tensor(np.asarray(multimodal_labels), dtype=torch.float32).reshape(-1)
        self.register_buffer("y_m", y_m)
        for s in self.modalities:
            self.register_buffer(f"label_{s}", y_m.clone())
        for s in ("m",) + self.modalities:
            k = int(feature_dims[s])
            self.register_buffer(f"memory_{s}", torch.zeros(len(y_m), k))
            self.register_buffer(f"centre_pos_{s}", torch.zeros(k))
            self.register_buffer(f"centre_neg_{s}", torch.zeros(k))

    def labels(self, s: str) -> torch.Tensor:
        """Current generated labels of modality s over the whole training split."""
        return getattr(self, f"label_{s}")

    def compare_with_annotated(self, annotated: Mapping[str, np.ndarray], kind: str) -> dict[str, dict]:
        """The generated label of every modality that has annotated labels in ``annotated``
        (``{"t": (N,), ...}`` over the training split, in ULGM's order), scored against them:
        ``{s: {"generated": {MAE, Corr, sign_agreement}, "multimodal_label": {...}, "n": N}}``
        (``multimodal_label``: ``y_m`` against the same annotation). Empty when none has any."""
        out: dict[str, dict] = {}
        y_m = self.y_m.detach().cpu().numpy()
        for s in self.modalities:
            truth = annotated.get(s)
            if truth is None:
                continue
            truth = np.asarray(truth, np.float32).reshape(-1)
            if truth.size != y_m.size:
                raise ValueError(f"annotated {s!r} labels: {truth.size} values for a training split of {y_m.size}")
            out[s] = {"generated": label_agreement(self.labels(s).detach().cpu().numpy(), truth, kind),
                      "multimodal_label": label_agreement(y_m, truth, kind), "n": int(truth.size)}
        return out

    def present(self, batch, s: str) -> torch.Tensor | None:
        """Rows of ``batch`` that had modality ``s`` (bool), or ``None`` when all did (or the
        published form is asked for)."""
        absent = (getattr(batch, "absent", None) or {}).get(s) if self.skip_absent else None
        if absent is None or not bool(absent.any()):
            return None
        return ~absent.to(self.y_m.device)

    def forward(self, output, batch, epoch: int) -> dict[str, torch.Tensor]:
        y_m = self.y_m[batch.index]
        terms = {}
        for s in self.modalities:
            target = self.labels(s)[batch.index]
            weight = torch.tanh((target - y_m).abs())
            present = self.present(batch, s)
            if present is not None:
                weight = weight * present
            terms[f"ulgm_{s}"] = (weight * (output.predictions[s] - target).abs()).mean()
        return terms

    @torch.no_grad()
    def after_step(self, output, batch, epoch: int) -> None:
        index = batch.index
        features = {s: output.features[s].detach().float() for s in ("m",) + self.modalities}
        present = {s: self.present(batch, s) for s in self.modalities}
        if epoch >= 2:
            self._update_labels(features, index, epoch, present)
        for s, f in features.items():
            rows = present.get(s)
            if rows is None:
                getattr(self, f"memory_{s}")[index] = f
            else:
                getattr(self, f"memory_{s}")[index[rows]] = f[rows]
        self._update_centres()

    def _relative_distance(self, s: str, f: torch.Tensor) -> torch.Tensor:
        d_pos = torch.linalg.vector_norm(f - getattr(self, f"centre_pos_{s}"), dim=-1)
        d_neg = torch.linalg.vector_norm(f - getattr(self, f"centre_neg_{s}"), dim=-1)
        return (d_neg - d_pos) / (d_pos + EPS)

    def _update_labels(self, features: dict[str, torch.Tensor], index: torch.Tensor, epoch: int,
                       present: dict[str, torch.Tensor | None] | None = None) -> None:
        y_m = self.y_m[index]
        delta_m = self._relative_distance("m", features["m"])
        n = float(epoch)
        for s in self.modalities:
            delta_s = self._relative_distance(s, features[s])
            alpha = delta_s / (delta_m + EPS)
            candidate = 0.5 * alpha * y_m + 0.5 * (y_m + delta_s - delta_m)
            candidate = candidate.clamp(-self.bound, self.bound)
            label = self.labels(s)
            rows = (present or {}).get(s)
            if rows is None:
                label[index] = (n - 1) / (n + 1) * label[index] + 2 / (n + 1) * candidate
            else:
                kept = index[rows]
                label[kept] = (n - 1) / (n + 1) * label[kept] + 2 / (n + 1) * candidate[rows]

    def _update_centres(self) -> None:
        for s in ("m",) + self.modalities:
            label = self.y_m if s == "m" else self.labels(s)
            memory = getattr(self, f"memory_{s}")
            positive = label >= 0 if self.zero_is_positive else label > 0
            for mask, name in ((positive, "pos"), (label < 0, "neg")):
                # An empty class (e.g. no negative labels yet) keeps a zero centre, not NaN.
                centre = memory[mask].mean(dim=0) if bool(mask.any()) else torch.zeros_like(memory[0])
                getattr(self, f"centre_{name}_{s}").copy_(centre)


def label_agreement(labels: np.ndarray, annotated: np.ndarray, kind: str) -> dict[str, float]:
    """``labels`` against ``annotated`` as the kind's metrics read them (SIMS: both clipped to
    [-1, 1]): ``MAE``, ``Corr`` (Pearson; 0 when either is constant) and ``sign_agreement``, the
    fraction on the same side of 0 (the kind's Acc-2 split: SIMS [-1, 0] vs (0, 1]; MOSI-like
    < 0 vs >= 0)."""
    if len(annotated) < 2:
        return {"MAE": float(np.mean(np.abs(np.asarray(labels) - np.asarray(annotated)))) if len(annotated) else float("nan"),
                "Corr": float("nan"), "sign_agreement": float("nan")}
    metrics = regression_metrics(np.asarray(labels, np.float32), np.asarray(annotated, np.float32), kind)
    return {"MAE": metrics["MAE"], "Corr": metrics["Corr"], "sign_agreement": metrics.get("Acc-2", metrics.get("Acc-2 (has-0)"))}
