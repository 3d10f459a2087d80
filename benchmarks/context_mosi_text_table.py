"""Every text-capable model on the real CMU-MOSI transcripts: each utterance alone against its
best context setting, in one table, from the per-model results of ``context_mosi_text.py``.

Each model's rows come from ``benchmarks/results/context_mosi_text_<model>_lstm.json`` (made with
``python benchmarks/context_mosi_text.py --model <model> --set data.context_encoder=lstm --name
context_mosi_text_<model>_lstm``), where the same seeds and settings run with ``data.context`` 0, 1
and 2 (0 and 1 for the fine-tuned encoders, which encode every neighbour in each step). "Best"
is the context setting above 0 with the lowest mean dev MAE (the metric the runs select on),
shown beside 0 even where 0 is better (the row says so). The models that cannot run on text
alone are listed with their reason. Writes ``benchmarks/results/context_mosi_text_models.md``
and ``.json``.

    python benchmarks/context_mosi_text_table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, write_result  # noqa: E402

METRICS = ("Acc-2 (non-0)", "F1 (non-0)", "MAE", "Corr")

# Models that are another model to the byte on text alone, so their rows would repeat its rows
# (each equivalence has a test).
SAME_ON_TEXT = {
    "dma": ("self_mm", "its default a-v alignment pair needs audio and vision and is dropped on text alone "
            "(tests/test_dma.py::test_flagship_on_text_alone_is_self_mm)"),
}


def refusals() -> dict[str, str]:
    """``{model: reason}`` for every registered model that refuses the transcripts alone (its
    own refusal, from its data check or its construction on text alone)."""
    from msakit.config import resolve_config
    from msakit.data import load_dataset
    from msakit.encoders.text import TextEncoder, default_text_encoder_path
    from msakit.errors import MsakitError
    from msakit.models import available_models, get_model_class
    from msakit.models.base import InputDims

    data = SHARED_DATA / "mosi_text_ctx"
    if not data.is_dir():
        return {}
    dataset = load_dataset(data, "mosi", ("t",))
    out = {}
    for name in available_models():
        model_class = get_model_class(name)
        try:
            model_class.check_data(dataset, ("t",))
            config = resolve_config(name, data_path=str(data), overrides={"data": {"modalities": ("t",)}})
            kwargs = {"text_encoder": TextEncoder.from_pretrained(default_text_encoder_path())} if model_class.uses_text_encoder else {}
            model_class(config.model_config, InputDims(("t",)), **kwargs)
        except MsakitError as refusal:
            out[name] = str(refusal).replace(f"{data}: ", "")
    return out


def cell(summary: dict, metric: str) -> str:
    s = summary[metric]
    return f"{s['mean'] * 100:.2f} ± {s['std'] * 100:.2f}" if metric not in ("MAE", "Corr") else f"{s['mean']:.4f} ± {s['std']:.4f}"


def plot(rows: dict, path: Path) -> None:
    """Acc-2 and MAE of each model alone and with its best context, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(names))
    for ax, metric, scale, label in ((axes[0], "Acc-2 (non-0)", 100, "Acc-2 (non-0), %"), (axes[1], "MAE", 1, "MAE (lower is better)")):
        for offset, key, text in ((-0.2, "alone", "each utterance alone"), (0.2, "best", "best context > 0 (lstm)")):
            means = [rows[n][key][metric]["mean"] * scale for n in names]
            stds = [rows[n][key][metric]["std"] * scale for n in names]
            ax.bar(x + offset, means, 0.4, yerr=stds, capsize=3, label=text)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel(label)
        low = min(rows[n][k][metric]["mean"] * scale for n in names for k in ("alone", "best"))
        high = max(rows[n][k][metric]["mean"] * scale for n in names for k in ("alone", "best"))
        ax.set_ylim(low - 0.15 * (high - low + 1e-9) - (2 if scale == 100 else 0.05), high + 0.15 * (high - low + 1e-9) + (2 if scale == 100 else 0.05))
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("CMU-MOSI transcripts (dev): each utterance alone vs with its neighbours, 3 seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    rows, sources = {}, {}
    for path in sorted(RESULTS.glob("context_mosi_text_*_lstm.json")):
        model = path.stem[len("context_mosi_text_"):-len("_lstm")]
        payload = json.loads(path.read_text())
        settings = payload["rows"]
        if "0" not in settings:
            continue
        # The best context setting (k > 0) by dev MAE, shown even where it loses to k = 0.
        best = min((k for k in settings if k != "0"), key=lambda k: settings[k]["summary"]["MAE"]["mean"])
        rows[model] = {"alone": settings["0"]["summary"], "best_context": int(best), "best": settings[best]["summary"],
                       "all": {k: v["summary"] for k, v in settings.items()}}
        sources[model] = payload["command"]
    refused = refusals()
    payload = {
        "protocol": ("every model that runs on text alone, on mosi_text_ctx (CMU-MOSI transcripts, standard folds): trained on "
                     "train, selected on dev by validation MAE, metrics on dev; packaged all-MiniLM-L6-v2 as each model uses it "
                     "(fine-tuned or frozen); 10 epochs; seeds 1111, 1112, 1113; context read through the utterance-level LSTM "
                     "(data.context_encoder=lstm, both sides); best = the data.context > 0 with the lowest mean dev MAE, shown even where 0 is better"),
        "commands": sources,
        "rows": rows,
        "refused": {m: r for m, r in refused.items() if m not in rows},
    }
    from msakit.models import available_models

    payload["same_as"] = {m: {"model": other, "why": why} for m, (other, why) in SAME_ON_TEXT.items() if m not in rows}
    payload["not_run"] = [m for m in available_models() if m not in rows and m not in refused and m not in payload["same_as"]]
    write_result("context_mosi_text_models", payload)
    lines = ["# Every text-capable model, each utterance alone vs with its best context (CMU-MOSI dev)", "",
             payload["protocol"] + ".", "",
             "| model | data.context | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 2) + "|"]
    for model, row in rows.items():
        lines.append(f"| {model} | 0 | " + " | ".join(cell(row["alone"], m) for m in METRICS) + " |")
        gain = (row["best"]["Acc-2 (non-0)"]["mean"] - row["alone"]["Acc-2 (non-0)"]["mean"]) * 100
        mae = row["best"]["MAE"]["mean"] - row["alone"]["MAE"]["mean"]
        lost = ", no gain on MAE" if mae >= 0 else ""
        lines.append(f"| {model} | {row['best_context']} (lstm): Acc-2 {gain:+.2f}, MAE {mae:+.4f}{lost} | "
                     + " | ".join(cell(row["best"], m) for m in METRICS) + " |")
    lines += ["", "Accuracies and F1 in % (mean ± std over seeds). Every context setting of each model: "
              "`context_mosi_text_<model>_lstm.md`.", ""]
    for m, same in payload["same_as"].items():
        lines += [f"`{m}` on text alone is `{same['model']}` to the byte: {same['why']}; its rows are `{same['model']}`'s.", ""]
    if payload["not_run"]:
        lines += ["Text-capable but not run yet: " + ", ".join(f"`{m}`" for m in payload["not_run"]) + ".", ""]
    if payload["refused"]:
        lines += ["Models that need audio or vision (or CH-SIMS's unimodal labels) and refuse the transcripts alone:", ""]
        lines += [f"- `{m}`: {r}" for m, r in payload["refused"].items()]
    lines.insert(4, "![each model alone and with its best context](context_mosi_text_models.png)\n")
    (RESULTS / "context_mosi_text_models.md").write_text("\n".join(lines) + "\n")
    plot(rows, RESULTS / "context_mosi_text_models.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
