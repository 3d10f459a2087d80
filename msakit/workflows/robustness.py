"""How a trained run holds up when a modality is missing or noisy: metrics along corruption curves.

``robustness(run_dir, data)`` evaluates every seed of a run on one split under a grid of
corruptions (``msakit.data.corruption``) and writes ``robustness.json``, ``robustness.md`` and
``robustness.png``. The default grid: each modality missing at rates 0, 0.1, ..., 1.0, and all
modalities missing (each independently) at the same rates. Frame drops, Gaussian noise at given
SNRs and transcript word errors are options. The same corruption seed is used for every model
seed, so the spread over seeds is the model's, not the corruption's.

**The summary number of a curve: its normalised area (nAUC).** The area under metric-vs-x,
divided by the width of the x range (trapezoidal rule): the curve's average value over the grid,
in the metric's own units, comparable to the clean value. For missing-rate curves (x from 0 to
1) an MAE nAUC of 0.60 against a clean MAE of 0.35 means: averaged over "nothing missing" to
"always missing", the error is 0.60. Lower is better for MAE, higher for accuracies, F1 and
Corr. ``nauc_over_clean`` divides it by the clean value (1.0: no loss at all; for accuracies
below 1 is the fraction kept, for MAE above 1 is the factor by which the error grows).

Missing-modality curves are computed from the predictions under each pattern of absent
modalities (2^k patterns for k modalities): sample i at rate r takes the prediction of the
pattern {m : u_{i,m} < r}. Each sample's prediction depends only on its own inputs, so this
equals evaluating the corrupted split point by point (up to float rounding of a different batch
padding; ``compose_missing=False`` evaluates directly, and the tests check the two agree), and
costs 2^k evaluations instead of one per point. A run trained with ``data.context`` reads each
sample with its neighbours, so a curve over a modality it reads that way is evaluated directly.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from msakit.data.corruption import ABSENT_CONVENTION, Corruption, absent_draws, apply_corruption, blank_split, missing_rows
from msakit.data.types import MODALITIES
from msakit.errors import ConfigError
from msakit.metrics import regression_metrics, summarize_seeds

DEFAULT_RATES = tuple(round(0.1 * i, 1) for i in range(11))
DEFAULT_SNRS = (20.0, 10.0, 5.0, 0.0, -5.0, -10.0)
NAMES = {"t": "text", "a": "audio", "v": "vision"}


@dataclass(frozen=True)
class Curve:
    """A corruption swept over ``xs`` (rates in [0, 1], or SNRs in dB for ``noise``)."""

    name: str
    kind: str
    modalities: tuple[str, ...]
    xs: tuple[float, ...]
    mode: str = "drop"

    @property
    def x_label(self) -> str:
        return "SNR (dB)" if self.kind == "noise" else {"missing": "missing rate", "frames": "frame drop rate", "words": "word error rate",
                                                           "incomplete": "missing rate (words and frames)"}[self.kind]

    def corruption(self, x: float) -> Corruption:
        if self.kind == "noise":
            return Corruption("noise", self.modalities, snr_db=float(x))
        return Corruption(self.kind, self.modalities, rate=float(x), mode=self.mode)


def _list(text: str | tuple | list | None) -> list[str]:
    if text is None:
        return []
    if isinstance(text, str):
        return [p.strip() for p in text.split(",") if p.strip() and p.strip().lower() != "none"]
    return list(text)


def build_grid(
    modalities: tuple[str, ...],
    *,
    rates: tuple[float, ...] = DEFAULT_RATES,
    missing: str | list[str] = "each,all",
    frame_drop: str | list[str] = "",
    noise: str | list[str] = "",
    snrs: tuple[float, ...] = DEFAULT_SNRS,
    word_errors: str | list[str] = "",
    incomplete: bool = False,
) -> list[Curve]:
    """The curves for a run using ``modalities``. ``missing``: ``each`` (one curve per modality),
    ``all`` (every modality, each independently), or sets like ``t+a``; ``frame_drop``/``noise``:
    modalities among a, v; ``word_errors``: ``drop`` and/or ``replace``; ``incomplete``: one curve
    where every modality used loses words or frames at the same rate (LNLN's evaluation)."""
    rates = tuple(sorted(float(r) for r in rates))
    if not rates or rates[0] < 0 or rates[-1] > 1:
        raise ConfigError(f"rates {rates}: give rates in [0, 1]")
    curves: list[Curve] = []

    def need(ms, what):
        absent = [m for m in ms if m not in modalities]
        if absent:
            raise ConfigError(f"{what}: the run does not use {absent} (it uses {list(modalities)})")

    for item in _list(missing):
        if item == "each":
            curves += [Curve(f"missing {m}", "missing", (m,), rates) for m in modalities]
        elif item == "all":
            curves.append(Curve("missing all", "missing", tuple(modalities), rates))
        else:
            ms = tuple(m for m in MODALITIES if m in item.split("+"))
            if not ms or set(item.split("+")) - set(MODALITIES):
                raise ConfigError(f"--missing {item!r}: use each, all, or modalities joined by + (e.g. t+a)")
            need(ms, f"--missing {item}")
            curves.append(Curve(f"missing {'+'.join(ms)}", "missing", ms, rates))
    for m in _list(frame_drop):
        need((m,), "--frame-drop")
        curves.append(Curve(f"frame drop {m}", "frames", (m,), rates))
    snrs = tuple(sorted(float(s) for s in snrs))
    for m in _list(noise):
        need((m,), "--noise")
        if not snrs:
            raise ConfigError("--snr: give at least one SNR in dB")
        curves.append(Curve(f"noise {m}", "noise", (m,), snrs))
    for mode in _list(word_errors):
        need(("t",), "--word-errors")
        curves.append(Curve(f"words {mode}", "words", ("t",), rates, mode=mode))
    if incomplete:
        curves.append(Curve("incomplete", "incomplete", tuple(modalities), rates))
    for c in curves:
        c.corruption(c.xs[0])  # validates modalities, modes, ranges
    names = [c.name for c in curves]
    if len(set(names)) != len(names):
        raise ConfigError(f"the grid repeats a curve: {names}")
    if not curves:
        raise ConfigError("the grid is empty: ask for at least one curve (--missing, --frame-drop, --noise, --word-errors, --incomplete)")
    return curves


def nauc(xs, ys) -> float:
    """Area under ys(xs) divided by the x range (trapezoidal): the curve's average value."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if len(xs) == 1:
        return float(ys[0])
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0 / (xs[-1] - xs[0]))


class _SeedEvaluator:
    """Predictions of one trained model on corrupted copies of one split."""

    def __init__(self, seed_dir: Path, split, kind: str, device, batch_size: int, corruption_seed: int):
        from msakit.training.checkpoint import load_model

        self.model, self.tokenizer, self.meta = load_model(seed_dir, device)
        self.modalities = tuple(self.meta["input_dims"]["modalities"])
        from msakit.training.runs import _max_text_tokens, _run_data_config, check_feature_dims, run_context

        data_config = _run_data_config(seed_dir)
        self.max_text_tokens = _max_text_tokens(data_config)
        self.context = run_context(seed_dir, data_config)  # neighbours read as the run was trained to
        check_feature_dims(split, self.meta, self.context, f"{seed_dir}", "the model")
        self.split, self.kind, self.device, self.batch_size, self.seed = split, kind, device, batch_size, corruption_seed
        from msakit.data.standardize import load_run_standardizer

        # The run's own standardisation (the training split's statistics), as evaluate and predict
        # apply it: without it a standardised run would be scored on raw features. Noise, frame
        # drops and word errors corrupt the raw data, which is then standardised; an absent
        # modality is blanked after standardisation, as training withheld it.
        self.standardizer = load_run_standardizer(seed_dir)
        self.clean = self.standardizer.apply(split) if self.standardizer is not None else split
        self._patterns: dict[frozenset, np.ndarray] = {}

    def predict(self, split, withheld: dict | None = None) -> np.ndarray:
        """``withheld`` (``{m: bool per row}``): the rows ``blank_split`` blanked, given to the
        model as training's modality dropout gave a withheld modality (with ``data.context``: no
        context from the neighbours either)."""
        from msakit.data.batching import BatchBuilder
        from msakit.training.trainer import predict_builder

        from msakit.encoders.text import text_token_limit

        builder = BatchBuilder(split, self.modalities, self.tokenizer, text_token_limit(self.model, self.max_text_tokens),
                               context=self.context, withheld=withheld)
        return predict_builder(self.model, builder, self.batch_size, self.device)["m"]

    def pattern(self, absent: frozenset) -> np.ndarray:
        """Predictions with the modalities in ``absent`` absent for every sample."""
        if absent not in self._patterns:
            n = len(self.split)
            flags = {m: np.ones(n, bool) for m in absent}
            self._patterns[absent] = self.predict(blank_split(self.clean, flags), flags)
        return self._patterns[absent]

    def missing_composed(self, curve: Curve, rate: float) -> np.ndarray:
        n = len(self.split)
        flags = {m: absent_draws(n, m, self.seed) < rate for m in curve.modalities}
        out = np.empty(n, dtype=np.float64)
        keys = [frozenset(m for m in curve.modalities if flags[m][i]) for i in range(n)]
        for key in set(keys):
            rows = np.array([k == key for k in keys])
            out[rows] = self.pattern(key)[rows]
        return out.astype(self.pattern(frozenset()).dtype)

    def composes(self, curve: Curve) -> bool:
        """Whether ``curve``'s missing-modality points can be composed from per-pattern
        predictions: not where the run reads one of its modalities with the neighbours (a
        sample's prediction then depends on whether its neighbours have it too)."""
        return not (self.context.on and set(self.context.modalities) & set(curve.modalities))

    def curve_predictions(self, curve: Curve, x: float, compose_missing: bool) -> np.ndarray:
        corruption = curve.corruption(x)
        if corruption.is_identity():
            return self.pattern(frozenset())
        if curve.kind == "missing" and compose_missing and self.composes(curve):
            return self.missing_composed(curve, x)
        if curve.kind == "missing":  # apply_corruption's draws, so the model is told which rows lack what
            flags = missing_rows(len(self.split), corruption, self.seed)
            return self.predict(apply_corruption(self.clean, corruption, self.seed), flags)
        corrupted = apply_corruption(self.split, corruption, self.seed)
        return self.predict(self.standardizer.apply(corrupted) if self.standardizer is not None else corrupted)


def robustness(
    run_dir: str | Path,
    data: str | Path = "synthetic",
    *,
    kind: str | None = None,
    split: str = "test",
    curves: list[Curve] | None = None,
    grid: dict[str, Any] | None = None,
    corruption_seed: int = 0,
    output_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    compose_missing: bool = True,
    command: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every seed of ``run_dir`` on ``split`` of ``data`` under ``curves`` (default
    ``build_grid(modalities, **grid)``: each modality missing, and all, at rates 0..1); write ``robustness.json/.md/.png`` to ``output_dir`` (default
    ``run_dir/robustness``) and return the JSON payload."""
    from msakit.training.runs import seed_dirs as _seed_dirs
    from msakit.data import load_dataset
    from msakit.training.checkpoint import write_json
    from msakit.training.trainer import resolve_device

    from msakit.outputs import check_output_dir

    run_dir = Path(run_dir)
    seed_dirs = _seed_dirs(run_dir)
    output_dir = check_output_dir("--output", output_dir if output_dir is not None else run_dir / "robustness", inputs=[data])
    first_meta = json.loads((seed_dirs[0] / "best" / "model.json").read_text()) if (seed_dirs[0] / "best" / "model.json").is_file() else None
    if first_meta is None:
        raise FileNotFoundError(f"{seed_dirs[0]}: no trained model (best/model.json); was training finished?")
    kind = kind or first_meta["kind"]
    modalities = tuple(first_meta["input_dims"]["modalities"])
    dataset = load_dataset(data, kind, modalities, splits=(split,))
    target = dataset[split]
    curves = curves if curves is not None else build_grid(modalities, **(grid or {}))
    torch_device = resolve_device(device)

    clean_per_seed: dict[str, dict] = {}
    per_seed: dict[str, dict[str, list[dict]]] = {}
    labels = target.labels["m"]
    for seed_dir in seed_dirs:
        evaluator = _SeedEvaluator(seed_dir, target, kind, torch_device, batch_size, corruption_seed)  # its config: data.context
        if evaluator.modalities != modalities:
            raise ConfigError(f"{seed_dir}: uses modalities {list(evaluator.modalities)}, the other seeds {list(modalities)}")
        name = seed_dir.name if seed_dir != run_dir else "run"
        clean_per_seed[name] = regression_metrics(evaluator.pattern(frozenset()), labels, kind)
        per_seed[name] = {}
        for curve in curves:
            if progress:
                print(f"[robustness] {name}: {curve.name}", file=sys.stderr, flush=True)
            per_seed[name][curve.name] = [
                regression_metrics(evaluator.curve_predictions(curve, x, compose_missing), labels, kind) for x in curve.xs
            ]

    clean = summarize_seeds(list(clean_per_seed.values()))
    payload: dict[str, Any] = {
        "command": command,
        "run_dir": str(run_dir),
        "model": first_meta["model"],
        "data": str(data),
        "kind": kind,
        "split": split,
        "modalities": list(modalities),
        "seeds": list(per_seed),
        "corruption_seed": corruption_seed,
        "absent_convention": ABSENT_CONVENTION,
        "missing_evaluation": ("direct" if not compose_missing or not any(evaluator.composes(c) for c in curves if c.kind == "missing")
                               else "composed from per-pattern predictions" if all(evaluator.composes(c) for c in curves if c.kind == "missing")
                               else "composed from per-pattern predictions, direct for the modalities the run reads with their neighbours"),
        "how_to_read": "nauc: area under metric-vs-x divided by the x range (the curve's average value, in the "
        "metric's units; compare with clean). nauc_over_clean: nauc / clean value. Lower MAE is better; higher "
        "accuracy, F1, Corr are better.",
        "clean": clean,
        "clean_per_seed": clean_per_seed,
        "curves": {},
    }
    for curve in curves:
        points = []
        for j, x in enumerate(curve.xs):
            seeds_here = {s: per_seed[s][curve.name][j] for s in per_seed}
            points.append({"x": x, "summary": summarize_seeds(list(seeds_here.values())), "per_seed": seeds_here})
        metrics = list(clean)
        auc_per_seed = [{m: nauc(curve.xs, [per_seed[s][curve.name][j][m] for j in range(len(curve.xs))]) for m in metrics} for s in per_seed]
        relative = [{m: a[m] / clean_per_seed[s][m] if clean_per_seed[s][m] else float("nan") for m in metrics} for a, s in zip(auc_per_seed, per_seed)]
        payload["curves"][curve.name] = {
            "kind": curve.kind,
            "modalities": list(curve.modalities),
            "mode": curve.mode if curve.kind == "words" else None,
            "x_label": curve.x_label,
            "x": list(curve.xs),
            "points": points,
            "nauc": summarize_seeds(auc_per_seed),
            "nauc_over_clean": summarize_seeds(relative),
        }
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "robustness.json", payload)
    (output_dir / "robustness.md").write_text(robustness_markdown(payload))
    plot_robustness(payload, output_dir / "robustness.png")
    return payload


def _main_metrics(payload: dict) -> list[str]:
    metrics = list(payload["clean"])
    return [m for m in ("MAE", "Acc-2 (non-0)", "Acc-2") if m in metrics][:2]


def _fmt(metric: str, s: dict) -> str:
    if metric.startswith(("Acc", "F1")):
        return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"
    return f"{s['mean']:.4f} ± {s['std']:.4f}"


def robustness_markdown(payload: dict) -> str:
    metrics = _main_metrics(payload)
    n = len(payload["seeds"])
    lines = [
        f"# Robustness of `{payload['model']}` ({payload['run_dir']})",
        "",
        f"Data `{payload['data']}`, {payload['split']} split; mean ± std over {n} seed(s) ({', '.join(payload['seeds'])}); "
        f"corruption seed {payload['corruption_seed']}. Accuracies in %.",
        f"Absent modality convention: {payload['absent_convention']}.",
        "",
        "Clean: " + ", ".join(f"{m} {_fmt(m, payload['clean'][m])}" for m in metrics),
        "",
        "## Summary: normalised area under each curve (nAUC)",
        "",
        "nAUC = area under metric-vs-x / width of the x range = the curve's average value; compare it with the clean "
        "value (lower MAE is better, higher accuracy is better). Retained = nAUC / clean.",
        "",
        "| curve | x | " + " | ".join(f"nAUC {m}" for m in metrics) + " | " + " | ".join(f"retained {m}" for m in metrics) + " |",
        "|---|---|" + "|".join("---" for _ in metrics * 2) + "|",
    ]
    for name, c in payload["curves"].items():
        xs = f"{c['x_label']} {c['x'][0]:g}..{c['x'][-1]:g}"
        cells = [name, xs] + [_fmt(m, c["nauc"][m]) for m in metrics]
        cells += [f"{c['nauc_over_clean'][m]['mean']:.3f} ± {c['nauc_over_clean'][m]['std']:.3f}" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    families: dict[str, list[str]] = {}
    for name, c in payload["curves"].items():
        families.setdefault("noise" if c["kind"] == "noise" else "rate", []).append(name)
    for family, names in families.items():
        xs = payload["curves"][names[0]]["x"]
        same_x = [nm for nm in names if payload["curves"][nm]["x"] == xs]
        for m in metrics:
            label = "SNR (dB)" if family == "noise" else "rate"
            lines += ["", f"## {m} against {label}", "", f"| {label} | " + " | ".join(same_x) + " |", "|---|" + "|".join("---" for _ in same_x) + "|"]
            for j, x in enumerate(xs):
                lines.append(f"| {x:g} | " + " | ".join(_fmt(m, payload["curves"][nm]["points"][j]["summary"][m]) for nm in same_x) + " |")
    if payload.get("command"):
        lines += ["", "Made with:", "", f"    {payload['command']}"]
    return "\n".join(lines) + "\n"


def plot_robustness(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = _main_metrics(payload)
    families: dict[str, list[str]] = {}
    for name, c in payload["curves"].items():
        families.setdefault("noise" if c["kind"] == "noise" else "rate", []).append(name)
    fig, axes = plt.subplots(len(metrics), len(families), figsize=(5.2 * len(families), 3.6 * len(metrics)), squeeze=False)
    for row, m in enumerate(metrics):
        for col, (family, names) in enumerate(families.items()):
            ax = axes[row][col]
            for name in names:
                c = payload["curves"][name]
                scale = 100.0 if m.startswith(("Acc", "F1")) else 1.0  # accuracies in %, as in the tables
                mean = scale * np.array([p["summary"][m]["mean"] for p in c["points"]])
                std = scale * np.array([p["summary"][m]["std"] for p in c["points"]])
                ax.plot(c["x"], mean, marker="o", ms=3, label=f"{name} (nAUC {scale * c['nauc'][m]['mean']:.3g})")
                ax.fill_between(c["x"], mean - std, mean + std, alpha=0.2)
            ax.axhline((100.0 if m.startswith(("Acc", "F1")) else 1.0) * payload["clean"][m]["mean"], color="k", ls=":", lw=1, label="clean")
            ax.set_xlabel("SNR (dB)" if family == "noise" else "rate (missing / dropped / word error)")
            if family == "noise":
                ax.invert_xaxis()  # left to right: cleaner to noisier
            ax.set_ylabel(m + (" (lower is better)" if m == "MAE" else " (%)" if m.startswith(("Acc", "F1")) else ""))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    import textwrap

    title = f"{payload['model']}: {payload['split']} metrics under corruption, mean ± std over {len(payload['seeds'])} seed(s)"
    width_in = fig.get_size_inches()[0]
    # wrapped to the figure's width (about 0.6 em per character at 11 pt), so a one-column figure keeps its whole title
    fig.suptitle("\n".join(textwrap.wrap(title, width=max(20, int(width_in * 72 / (11 * 0.6)) - 2))), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = ["Curve", "DEFAULT_RATES", "DEFAULT_SNRS", "build_grid", "nauc", "robustness"]
