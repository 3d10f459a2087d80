"""Several models on the same data and seeds: one table (markdown + JSON) and one figure.

``compare`` trains every model over every seed through ``msakit.train`` (finished seeds in the
runs directory are reused, after checking they were trained with the same config), then
writes ``compare.json``, ``compare.md`` (mean ± std of every metric, parameter count, train
time per epoch, training samples/s) and ``compare.png`` (each metric per model, every seed as
a point over the mean ± std). With ``text_only=True`` each model also gets a row trained on
the text alone, so a reader can see how much the other modalities add; a model that cannot
run on text alone gets a row saying why.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from msakit.errors import ConfigError, DataError
from msakit.metrics import summarize_seeds

TEXT_ONLY = " (text only)"


def _merge(*layers: dict | None) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in (layer or {}).items():
            merged.setdefault(section, {}).update(values)
    return merged


def _run_statistics(seed_dir: Path) -> dict[str, float]:
    results = json.loads((seed_dir / "results.json").read_text())
    epochs = [json.loads(line) for line in (seed_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {
        "seconds_per_epoch": results["train_seconds"] / max(results["epochs_run"], 1),
        "samples_per_s": float(np.mean([e["train_samples_per_s"] for e in epochs])) if epochs else float("nan"),
        "epochs_run": results["epochs_run"],
        "best_epoch": results["best_epoch"],
    }


def _parameter_counts(seed_dir: Path) -> dict[str, int]:
    from msakit.training.checkpoint import load_model

    model, _, _ = load_model(seed_dir)
    total = sum(p.numel() for p in model.parameters())
    text = sum(p.numel() for p in model.text_model.parameters()) if hasattr(model, "text_model") else 0
    return {"parameters": total, "parameters_without_text_encoder": total - text}


def _machine() -> dict:
    import torch

    return {"platform": platform.platform(), "cores_visible": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def compare(
    models: list[str] | tuple[str, ...],
    data: str | Path = "synthetic",
    *,
    output_dir: str | Path,
    kind: str = "mosi",
    seeds: tuple[int, ...] | list[int] = (1111, 1112, 1113),
    overrides: dict[str, dict[str, Any]] | None = None,
    model_overrides: dict[str, dict[str, dict[str, Any]]] | None = None,
    text_only: bool = False,
    runs_dir: str | Path | None = None,
    command: str | None = None,
    model_data: dict[str, str | Path] | None = None,
    engine: str = "local",
    address: str | None = None,
) -> dict:
    """Train each model in ``models`` over ``seeds`` on ``data`` and write the comparison.

    ``overrides`` (``{"train"|"data"|"alignment"|"model": {...}}``) apply to every model;
    ``model_overrides[name]`` to that model only. ``model_data[name]`` trains that model on
    another file of the same samples (MAG-BERT needs the word-aligned layout of the data: pass
    the aligned file here); its row names the file. Runs go to ``runs_dir`` (default
    ``output_dir/runs``), one directory per row; finished seeds there are reused. ``command``,
    the call that made the table, is recorded in the JSON and the markdown. ``engine="ray"``
    trains the model × seed runs as tasks on a Ray cluster first (``address``, or a local one;
    the runs directory must be one every machine sees), then makes the table from them as the
    local engine would. Returns the JSON payload."""
    from msakit.training.runs import train
    from msakit.data import load_dataset
    from msakit.models import get_model_class

    models = list(dict.fromkeys(models))
    if not models:
        raise ConfigError("compare: --models is empty; name at least one model, e.g. --models self_mm,tfn")
    for name in models:
        get_model_class(name)  # unknown names fail before anything trains
    for option, given in (("settings", model_overrides), ("--model-data", model_data)):
        unknown = set(given or {}) - set(models)
        if unknown:
            raise ConfigError(f"compare: {option} given for {sorted(unknown)}, which are not among --models {','.join(models)}")
    model_data = {name: str(path) for name, path in (model_data or {}).items()}
    for name, path in model_data.items():
        if path != "synthetic" and not Path(path).exists():
            raise ConfigError(f"compare: --model-data {name}={path}: no such file")
    if not seeds:
        raise ConfigError("compare: --seeds is empty; give at least one seed")
    from msakit.outputs import check_output_dir

    output_dir = check_output_dir("--output", output_dir, inputs=[data])
    runs_dir = check_output_dir("--runs-dir", runs_dir, inputs=[data]) if runs_dir else output_dir / "runs"
    base = _merge(overrides)
    dataset = load_dataset(str(data), kind, base.get("data", {}).get("modalities"))
    rows = [(name, name, None) for name in models]
    if text_only and "t" in dataset.modalities and len(dataset.modalities) > 1:
        rows = [r for name in models for r in ((name, name, None), (name + TEXT_ONLY, name, "t"))]
    payload: dict[str, Any] = {
        "command": command,
        "data": str(data),
        "kind": kind,
        "seeds": [int(s) for s in seeds],
        "modalities": list(dataset.modalities),
        "overrides": base,
        "model_overrides": model_overrides or {},
        "model_data": model_data,
        "machine": _machine(),
        "complete": False,  # True once every row is in
        "rows": {},
    }
    del dataset
    if engine not in ("local", "ray"):
        raise ConfigError(f"compare: --engine {engine!r}: use local or ray")
    plan = []
    for label, name, modalities in rows:
        run_overrides = _merge(base, (model_overrides or {}).get(name))
        if modalities:
            run_overrides.setdefault("data", {})["modalities"] = modalities
        plan.append((label, name, run_overrides, runs_dir / (name + ("_text_only" if modalities else "")), model_data.get(name, str(data))))
    if engine == "ray":
        _train_on_ray([(label, name, row_data, kind, int(seed), run_dir, run_overrides)
                       for label, name, run_overrides, run_dir, row_data in plan for seed in seeds
                       if not (run_dir / f"seed_{seed}" / "results.json").exists()], address)
    split = None
    for label, name, modalities in rows:
        run_overrides, run_dir, row_data = next(p[2:] for p in plan if p[0] == label)
        print(f"[compare] {label}: {len(seeds)} seed(s) in {run_dir}", flush=True)
        try:
            # Finished seeds are reused; one made with other settings stops the comparison (RunDirError).
            result = train(name, row_data, kind=kind, seeds=seeds, run_dir=run_dir, overrides=run_overrides, reuse=True)
        except (ConfigError, DataError) as refusal:  # the model cannot run on this data (these modalities, this layout)
            print(f"[compare] {label}: refused: {refusal}", flush=True)
            payload["rows"][label] = {"model": name, "status": "refused", "reason": str(refusal), "data": row_data, "run_dir": str(run_dir)}
            _write_outputs(payload, output_dir)
            continue
        split = result.evaluated_split
        statistics = {seed: _run_statistics(run_dir / f"seed_{seed}") for seed in seeds}
        payload["rows"][label] = {
            "model": name,
            "status": "ok",
            "modalities": modalities or "".join(payload["modalities"]),
            "data": row_data,
            "run_dir": str(run_dir),
            "per_seed": {str(k): v for k, v in result.per_seed.items()},
            "summary": result.summary,
            "timing": summarize_seeds(list(statistics.values())),
            "per_seed_timing": {str(k): v for k, v in statistics.items()},
            **_parameter_counts(run_dir / f"seed_{seeds[0]}"),
        }
        payload["evaluated_split"] = split
        _write_outputs(payload, output_dir)  # after every row: a stopped comparison keeps its finished rows
    payload["complete"] = True
    _write_outputs(payload, output_dir)
    return payload


def _train_one(name: str, data: str, kind: str, seed: int, run_dir: Path, overrides: dict) -> str | None:
    """One model and seed of a comparison (a Ray task): None when trained, else the refusal."""
    from msakit.training.runs import train

    try:
        train(name, data, kind=kind, seeds=[seed], run_dir=run_dir, overrides=overrides, reuse=True)
    except (ConfigError, DataError) as refusal:
        return str(refusal)
    return None


def _train_on_ray(tasks: list[tuple], address: str | None) -> None:
    """Every ``(label, model, data, kind, seed, run_dir, overrides)`` as a task of its own, spread
    over the cluster (``train.num_threads`` CPUs each, or one; a GPU each where the cluster has
    them and the runs are not on the CPU); progress as they finish. A task whose worker dies is
    retried, and continues from the run's last saved epoch."""
    if not tasks:
        return
    from msakit.extract.ray_engine import connect

    ray, started = connect(address)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        pending = {}
        remote = ray.remote(max_retries=3)(_train_one)  # one remote function; each task asks for its own resources
        for label, name, data, kind, seed, run_dir, overrides in tasks:
            train_settings = overrides.get("train", {})
            cpus = max(1, int(train_settings.get("num_threads", 0) or 1))
            on_gpu = gpus >= 1 and str(train_settings.get("device", "auto")) != "cpu"
            task = remote.options(num_cpus=cpus, num_gpus=1 if on_gpu else 0)
            pending[task.remote(name, data, kind, seed, run_dir, overrides)] = (label, seed)
        print(f"[compare] {len(tasks)} run(s) on Ray ({int(ray.cluster_resources().get('CPU', 0))} CPU(s), {int(gpus)} GPU(s))", flush=True)
        done_count = 0
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            label, seed = pending.pop(done[0])
            refusal = ray.get(done[0])
            done_count += 1
            print(f"[compare] {done_count}/{len(tasks)} {label} seed {seed}: " + (f"refused: {refusal}" if refusal else "trained"), flush=True)
    finally:
        if started:
            ray.shutdown()


def _write_outputs(payload: dict, output_dir: Path) -> None:
    from msakit.training.checkpoint import atomic_write, write_json

    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "compare.json", payload)
    atomic_write(output_dir / "compare.md", lambda p: p.write_text(compare_markdown(payload)))
    plot_compare(payload, output_dir / "compare.png")


def _cell(summary: dict, metric: str, percent: bool, digits: int = 4) -> str:
    s = summary.get(metric)
    if s is None:
        return "n/a"
    if percent:
        return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def compare_table(rows: dict[str, dict]) -> list[str]:
    """The markdown table of ``compare.json``'s ``rows`` (header, separator, one line per row;
    a refused row says why), as lines: shared by ``compare.md`` and tables combined from
    several comparisons (``benchmarks/combine_compare.py``)."""
    done = [r for r in rows.values() if r["status"] == "ok"]
    metrics = list(done[0]["summary"]) if done else []
    percent = lambda m: m.startswith(("Acc", "F1"))  # noqa: E731
    header = ["model", *metrics, "parameters (without text encoder)", "s / epoch", "train samples/s", "epochs (best)"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for label, r in rows.items():
        if r["status"] != "ok":
            lines.append("| " + " | ".join([label, f"refused: {r['reason']}"] + [""] * (len(header) - 2)) + " |")
            continue
        cells = [label] + [_cell(r["summary"], m, percent(m)) for m in metrics]
        cells.append(f"{r['parameters']:,} ({r['parameters_without_text_encoder']:,})")
        cells.append(_cell(r["timing"], "seconds_per_epoch", False, 2))
        cells.append(_cell(r["timing"], "samples_per_s", False, 1))
        cells.append(f"{r['timing']['epochs_run']['mean']:.1f} ({r['timing']['best_epoch']['mean']:.1f})")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def compare_markdown(payload: dict) -> str:
    rows = payload["rows"]
    lines = [
        f"Models on `{payload['data']}` ({payload['kind']}, {payload.get('evaluated_split')} split), mean ± std over seeds "
        f"{payload['seeds']}; accuracies/F1 in %. Time per epoch and samples/s are training-only, on the machine below.",
        "",
        *compare_table(rows),
    ]
    done = [r for r in rows.values() if r["status"] == "ok"]
    lines += _text_only_wins(rows, list(done[0]["summary"]) if done else [])
    machine = payload.get("machine", {})
    for label, path in (payload.get("model_data") or {}).items():
        lines += ["", f"{label}: trained and scored on `{path}` (the same samples in another layout)."]
    lines += ["", f"Machine: {machine.get('platform')}, {machine.get('cores_visible')} cores visible, torch {machine.get('torch')}."]
    if not payload.get("complete", True):
        lines += ["", f"Incomplete: {len(rows)} row(s) so far; run the same command again to finish (finished seeds are reused)."]
    if payload.get("command"):
        lines += ["", "Made with:", "", f"    {payload['command']}"]
    return "\n".join(lines) + "\n"


def _text_only_wins(rows: dict, metrics: list[str]) -> list[str]:
    """For each model with a text-only row: on each metric, in how many seeds all modalities beat
    text alone, and a warning where the mean loses on MAE, Corr or Acc-2."""
    from msakit.metrics import higher_is_better, seeds_won

    pairs = [(label, r, rows[label + TEXT_ONLY]) for label, r in rows.items()
             if label + TEXT_ONLY in rows and r["status"] == "ok" and rows[label + TEXT_ONLY]["status"] == "ok"]
    if not pairs:
        return []
    lines = ["", "All modalities against text alone, the same model and seeds: seeds won on each metric "
             "(a tie is not a win); **loses** where the mean is worse.", "",
             "| model | " + " | ".join(metrics) + " |", "|" + "|".join("---" for _ in range(len(metrics) + 1)) + "|"]
    for label, r, t in pairs:
        cells = []
        for m in metrics:
            won, of = seeds_won(r["per_seed"], t["per_seed"], m)
            a, b = r["summary"][m]["mean"], t["summary"][m]["mean"]
            worse = a < b if higher_is_better(m) else a > b
            cells.append(f"{won}/{of}" + (" **loses**" if worse else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def plot_compare(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: r for k, r in payload["rows"].items() if r["status"] == "ok"}
    if not rows:
        return
    names = list(rows)
    panels = [("summary", "per_seed", m) for m in next(iter(rows.values()))["summary"]]
    panels.append(("timing", "per_seed_timing", "seconds_per_epoch"))
    columns = 3
    n_rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(n_rows, columns, figsize=(4.2 * columns, 3.2 * n_rows), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (section, per_seed_key, metric) in zip(axes.flat, panels):
        for x, name in enumerate(names):
            r = rows[name]
            s = r[section].get(metric)
            if s is None:
                continue
            ax.errorbar([x], [s["mean"]], yerr=[s["std"]], fmt="s", color="#247", capsize=4, markersize=6, zorder=3)
            points = [v[metric] for v in r[per_seed_key].values() if metric in v]
            ax.scatter(x + rng.uniform(-0.12, 0.12, len(points)), points, s=12, color="#e73", alpha=0.8, zorder=2)
        ax.set_title(metric if section == "summary" else "train seconds / epoch", fontsize=10)
        ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{payload['data']} ({payload.get('evaluated_split')}): mean ± std (squares) and each seed (dots), seeds {payload['seeds']}", fontsize=10)
    fig.tight_layout()
    from msakit.training.checkpoint import atomic_write

    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
