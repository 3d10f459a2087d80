"""Does audio/vision help? Train a model as asked and again on text alone, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msakit.training.runs import TrainSummary, train


TEXT_ONLY_DIR = "text_only"


def text_only_overrides(overrides: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """The same settings with text as the only modality; alignment pairs and modality dropout
    that name audio or vision are dropped (there is nothing to align or drop), and so is
    ``data.context`` where it reads audio/vision only."""
    out = {k: dict(v) for k, v in (overrides or {}).items()}
    out.setdefault("data", {})["modalities"] = "t"
    from msakit.data.context import reads_any

    data = out["data"]
    if data.get("context") and not reads_any(data.get("context_modalities", "t"), ("t",)):
        data["context"] = 0  # context on audio/vision only: nothing to read with its neighbours (as a text stage)
    out.setdefault("alignment", {})["pairs"] = "none"
    from msakit.data.corruption import format_modality_dropout, parse_modality_dropout

    dropout = parse_modality_dropout(out.get("train", {}).get("modality_dropout", ""))
    out.setdefault("train", {})["modality_dropout"] = format_modality_dropout({m: p for m, p in dropout.items() if m == "t"})
    return out


def compare_text_only(
    model: str = "dma",
    data: str | Path = "synthetic",
    *,
    kind: str = "mosi",
    seeds: tuple[int, ...] | list[int] = (1111,),
    run_dir: str | Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    resume: bool = False,
) -> tuple[TrainSummary, TrainSummary]:
    """Train ``model`` as asked, then the same model and settings on text alone (in
    ``run_dir/text_only``; with ``model.fusion=text_first``, or ``auto`` with ``auto_text_stage=own``, each run's text stage is
    that run, and nothing trains twice); return both summaries. ``side_by_side`` prints them together, so
    a multimodal result that loses to text alone is visible."""
    multimodal = train(model, data, kind=kind, seeds=seeds, run_dir=run_dir, overrides=overrides, resume=resume)
    staged = text_stages(multimodal)
    if staged is not None:  # model.fusion=text_first or auto: each run's text stage is its text-only run
        return multimodal, staged
    text_dir = multimodal.run_dir / TEXT_ONLY_DIR
    text = train(model, data, kind=kind, seeds=seeds, run_dir=text_dir, overrides=text_only_overrides(overrides), reuse=resume)
    return multimodal, text


def text_stages(multimodal: TrainSummary) -> TrainSummary | None:
    """The text-only side read from the runs' text stages (``model.fusion=text_first``: the
    same run as ``--text-only`` would train, bit for bit), or None when a seed has none, or its
    text stage read another run's encoder (fusion=auto's default: heads on the concat encoder)."""
    import json

    from msakit.metrics import summarize_seeds

    per_seed = {}
    for seed in multimodal.per_seed:
        results = multimodal.run_dir / f"seed_{seed}" / "results.json"
        stage = json.loads(results.read_text()).get("text_stage") if results.exists() else None
        if stage is None or stage.get("text_encoder", "own") != "own":
            return None
        per_seed[seed] = stage["metrics"]
    return TrainSummary(multimodal.run_dir, per_seed, summarize_seeds(list(per_seed.values())), multimodal.evaluated_split)


# Where users look first: a multimodal result that loses on any of these gets a warning.
HEADLINE = (("MAE", False), ("Corr", True), ("Acc-2 (non-0)", True), ("Acc-2", True))


def side_by_side(multimodal: TrainSummary, text: TrainSummary) -> str:
    """A markdown table: each metric for all modalities, text alone, the difference, and in how
    many seeds all modalities beat text alone; a warning line when text alone is better in the
    mean on MAE, Corr or Acc-2 (non-0; Acc-2 on SIMS)."""
    from msakit.metrics import _format_value, seeds_won

    header = ["Metric", "all modalities", "text only", "difference", "seeds won"]
    rows = []
    for name, s in multimodal.summary.items():
        t = text.summary[name]
        won, of = seeds_won(multimodal.per_seed, text.per_seed, name)
        rows.append([name, f"{_format_value(name, s['mean'])} ± {_format_value(name, s['std'])}",
                     f"{_format_value(name, t['mean'])} ± {_format_value(name, t['std'])}", _format_value(name, s["mean"] - t["mean"]),
                     f"{won}/{of}"])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    lines = [f"{multimodal.evaluated_split} metrics over {len(multimodal.per_seed)} seed(s): all modalities vs text only",
             line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows),
             "Accuracies and F1 in %; seeds won: seeds where all modalities beat text alone on that metric."]
    worse = []
    for metric, up in HEADLINE:
        if metric == "Acc-2" and "Acc-2 (non-0)" in multimodal.summary:
            continue  # MOSI/MOSEI: the non-0 form is the headline one
        if metric in multimodal.summary:
            a, b = multimodal.summary[metric]["mean"], text.summary[metric]["mean"]
            if not (a > b if up else a < b):
                worse.append(metric)
    if worse:
        lines.append(f"WARNING: adding audio/vision does not beat text alone on {' and '.join(worse)}.")
    return "\n".join(lines)


__all__ = ["TEXT_ONLY_DIR", "compare_text_only", "side_by_side", "text_only_overrides"]
