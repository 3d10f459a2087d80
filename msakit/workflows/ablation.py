"""Ablation of the alignment module: the same model trained with several pair sets, with and
without ULGM, over several seeds; a table (markdown + JSON) and a plot of every metric.

Every variant gets the same architecture: the t, a and v feature sizes are all set to
``align_dim``, whatever the pair set, so "none" is exactly the model without the loss and the
covariance distances of all variants are comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msakit.errors import ConfigError
from msakit.metrics import summarize_seeds
from msakit.training.checkpoint import read_json, write_json

DEFAULT_PAIR_SETS = ("none", "a-v", "t-a", "t-v", "all")


def variant_name(pairs: str, ulgm: bool) -> str:
    return pairs if ulgm else f"{pairs} / no ULGM"


def ablate(
    model: str = "dma",
    data: str | Path = "synthetic",
    *,
    output_dir: str | Path,
    kind: str = "mosi",
    seeds: tuple[int, ...] | list[int] = (1111, 1112, 1113),
    pair_sets: tuple[str, ...] | list[str] = DEFAULT_PAIR_SETS,
    no_ulgm_pair_sets: tuple[str, ...] | list[str] = ("none", "a-v"),
    align_dim: int = 32,
    overrides: dict[str, dict[str, Any]] | None = None,
    resume: bool = True,
    runs_dir: str | Path | None = None,
    command: str | None = None,
) -> dict:
    """Train every variant (resuming finished ones), then write ``ablation.json``,
    ``ablation.md`` and ``ablation.png`` in ``output_dir``; return the JSON payload.

    Runs go to ``runs_dir`` (default ``output_dir/runs``); two ablations sharing a
    ``runs_dir`` reuse each other's finished seeds instead of training them again.
    ``command``, the call that made the table, is recorded in the JSON and the markdown."""
    from msakit.training.runs import train
    from msakit.models import get_model_class

    from msakit.outputs import check_output_dir

    output_dir = check_output_dir("--output", output_dir, inputs=[data])
    if runs_dir:
        check_output_dir("--runs-dir", runs_dir, inputs=[data])
    model_class = get_model_class(model)
    fields = getattr(model_class, "FEATURE_DIM_FIELDS", {})
    if not all(s in fields for s in "tav"):
        raise ConfigError(f"ablate: model {model!r} does not declare feature sizes for t, a and v")
    if no_ulgm_pair_sets and "ulgm" not in {f for f in model_class.config_class.__dataclass_fields__}:
        raise ConfigError(f"ablate: model {model!r} has no ULGM switch; pass no_ulgm_pair_sets=()")
    variants = [(p, True) for p in pair_sets] + [(p, False) for p in no_ulgm_pair_sets]
    payload: dict[str, Any] = {"command": command, "model": model, "data": str(data), "kind": kind, "seeds": list(seeds), "align_dim": align_dim, "variants": {}}
    for pairs, ulgm in variants:
        name = variant_name(pairs, ulgm)
        run_overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        run_overrides.setdefault("model", {}).update({fields[s]: align_dim for s in "tav"})
        if not ulgm:
            run_overrides["model"]["ulgm"] = False
        run_overrides.setdefault("alignment", {}).update({"pairs": pairs, "align_dim": align_dim})
        run_dir = Path(runs_dir or output_dir / "runs") / name.replace(" / ", "_").replace(",", "+")
        print(f"[ablate] {name}: {len(seeds)} seed(s) in {run_dir}", flush=True)
        result = train(model, data, kind=kind, seeds=seeds, run_dir=run_dir, overrides=run_overrides, reuse=resume)  # finished seeds are reused
        distances = {}
        for seed in seeds:
            seed_results = read_json(run_dir / f"seed_{seed}" / "results.json", "results file")
            distances[seed] = {f"cov {k}": v for k, v in seed_results["covariance_distance"].items()}
        payload["variants"][name] = {
            "pairs": pairs,
            "ulgm": ulgm,
            "run_dir": str(run_dir),
            "per_seed": {str(k): v for k, v in result.per_seed.items()},
            "summary": result.summary,
            "covariance_distance": summarize_seeds(list(distances.values())),
        }
    payload["evaluated_split"] = result.evaluated_split
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "ablation.json", payload)
    (output_dir / "ablation.md").write_text(ablation_markdown(payload))
    plot_ablation(payload, output_dir / "ablation.png")
    return payload


def ablation_markdown(payload: dict) -> str:
    variants = payload["variants"]
    first = next(iter(variants.values()))
    metrics = list(first["summary"])
    distances = [k for k in first["covariance_distance"] if k in ("cov a-v", "cov t-a", "cov t-v")]
    percent = lambda m: m.startswith(("Acc", "F1"))  # noqa: E731
    header = ["variant", *metrics, *distances]
    lines = [
        f"Ablation of `{payload['model']}` on `{payload['data']}` ({payload['evaluated_split']} split), "
        f"mean ± std over seeds {payload['seeds']}; accuracies/F1 in %, covariance distances ×1e3 "
        f"(L_cov between features over the whole split, all features {payload['align_dim']}-dim).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for name, v in variants.items():
        cells = [name]
        for m in metrics:
            s = v["summary"][m]
            cells.append(f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}" if percent(m) else f"{s['mean']:.4f} ± {s['std']:.4f}")
        for d in distances:
            s = v["covariance_distance"].get(d)
            cells.append(f"{1e3 * s['mean']:.3f} ± {1e3 * s['std']:.3f}" if s else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    if payload.get("command"):
        lines += ["", "Made with:", "", f"    {payload['command']}"]
    return "\n".join(lines) + "\n"


def plot_ablation(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = payload["variants"]
    names = list(variants)
    first = variants[names[0]]
    panels = [("summary", m) for m in first["summary"]] + [("covariance_distance", "cov a-v")]
    columns = 4
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for ax, (section, metric) in zip(axes.flat, panels):
        means = [variants[n][section].get(metric, {}).get("mean", float("nan")) for n in names]
        stds = [variants[n][section].get(metric, {}).get("std", 0.0) for n in names]
        ax.bar(range(len(names)), means, yerr=stds, capsize=3, color=["#777" if n == "none" else "#3a7" for n in names])
        ax.set_title(metric, fontsize=10)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        finite = [m for m in means if m == m]
        if finite and section == "summary" and metric not in ("MAE",):
            low = min(m - s for m, s in zip(means, stds) if m == m)
            ax.set_ylim(max(0.0, low - 0.05 * abs(low)), None)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{payload['model']} ablation, mean ± std over {len(payload['seeds'])} seeds ({payload['evaluated_split']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
