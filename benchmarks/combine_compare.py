"""One table from several ``msakit compare`` results on the same data and epoch budget.

Reads the ``compare.json`` files given, keeps the seeds every source has, recomputes each row's
mean ± std over those seeds from its per-seed metrics and timings (no training), and writes
``compare.md``, ``compare.json`` and ``compare.png`` in ``--output`` with the table format of
``msakit compare`` (its own formatting functions). The markdown names every source file, its
command and its machine. Sources that differ in data, kind, evaluated split, modalities, the
epoch budget or any other setting (torch threads and progress bars aside) are refused (two data
paths are the same data when both files are still there and hold the same bytes); a model
found in several sources must have the same per-seed metrics on the kept seeds (the first
source's row is used).

    python benchmarks/combine_compare.py benchmarks/results/compare_synthetic/compare.json \\
        benchmarks/results/compare_synthetic_new_models/compare.json \\
        --output benchmarks/results/compare_synthetic_13models
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

from msakit.data import SYNTHETIC, synthetic_path
from msakit.metrics import summarize_seeds
from msakit.workflows.compare import compare_table, plot_compare

# Settings that change speed or display, not the results; they may differ between sources.
IGNORED_SETTINGS = {("train", "num_threads"), ("train", "progress")}


class CombineError(Exception):
    pass


def _settings(payload: dict) -> dict:
    return {(section, key): value for section, values in (payload.get("overrides") or {}).items()
            for key, value in values.items() if (section, key) not in IGNORED_SETTINGS}


def _protocol(payload: dict) -> dict:
    settings = _settings(payload)
    return {
        "data": payload.get("data"),
        "kind": payload.get("kind"),
        "evaluated split": payload.get("evaluated_split"),
        "modalities": payload.get("modalities"),
        "epochs (train.max_epochs)": settings.pop(("train", "max_epochs"), None),
        "other settings": {f"{s}.{k}": v for (s, k), v in sorted(settings.items())},
        "per-model settings": payload.get("model_overrides") or {},
    }


@lru_cache(maxsize=None)
def _digest(data: str | None) -> str | None:
    """sha256 of the file a compare read (``synthetic``: the packaged generator's file); None where
    it is not on this machine any more."""
    if data is None:
        return None
    path = synthetic_path() if data == SYNTHETIC else Path(data)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _same(field: str, a, b) -> bool:
    if a == b:
        return True
    return field == "data" and _digest(a) is not None and _digest(a) == _digest(b)


def _restrict(row: dict, seeds: list[str]) -> dict:
    """The row over ``seeds`` only: per-seed values kept, mean ± std recomputed."""
    if row["status"] != "ok":
        return dict(row)
    per_seed = {s: row["per_seed"][s] for s in seeds}
    per_seed_timing = {s: row["per_seed_timing"][s] for s in seeds}
    return {
        **row,
        "per_seed": per_seed,
        "summary": summarize_seeds(list(per_seed.values())),
        "timing": summarize_seeds(list(per_seed_timing.values())),
        "per_seed_timing": per_seed_timing,
    }


def combine(paths: list[Path]) -> dict:
    if len(paths) < 2:
        raise CombineError("give at least two compare.json files to combine")
    sources = []
    for path in paths:
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CombineError(f"{path}: cannot read a compare.json ({error})") from None
        if "rows" not in payload or "seeds" not in payload:
            raise CombineError(f"{path}: not an msakit compare.json (no rows/seeds)")
        if not payload.get("complete", True):
            raise CombineError(f"{path}: an incomplete comparison; finish it first (run its command again)")
        sources.append((path, payload))
    first_path, first = sources[0]
    reference = _protocol(first)
    for path, payload in sources[1:]:
        protocol = _protocol(payload)
        for field, value in reference.items():
            if not _same(field, protocol[field], value):
                raise CombineError(f"{path} and {first_path} differ in {field} ({protocol[field]!r} vs {value!r}); "
                                   "only comparisons on the same data and budget are combined")
    seeds = sorted(set.intersection(*(set(p["seeds"]) for _, p in sources)))
    if not seeds:
        raise CombineError("the sources share no seed: " + "; ".join(f"{p}: {s['seeds']}" for p, s in sources))
    kept = [str(s) for s in seeds]
    rows: dict[str, dict] = {}
    origin: dict[str, Path] = {}
    model_data: dict[str, str] = {}
    for path, payload in sources:
        for label, row in payload["rows"].items():
            row = _restrict(row, kept)
            if label in rows:
                if rows[label]["status"] != row["status"] or (row["status"] == "ok" and rows[label]["per_seed"] != row["per_seed"]):
                    raise CombineError(f"{label} is in {origin[label]} and {path} with different results on seeds {seeds}; "
                                       "keep only one of them")
                continue
            rows[label] = {**row, "source": str(path)}
            origin[label] = path
        for name, file in (payload.get("model_data") or {}).items():
            model_data.setdefault(name, file)
    return {
        "combined_from": [{"file": str(p), "command": s.get("command"), "seeds": s["seeds"], "machine": s.get("machine"),
                           "rows": list(s["rows"])} for p, s in sources],
        "data": first["data"],
        "same_data": {str(p): {"data": s["data"], "sha256": _digest(s["data"])} for p, s in sources if s["data"] != first["data"]},
        "kind": first["kind"],
        "seeds": seeds,
        "modalities": first.get("modalities"),
        "evaluated_split": first.get("evaluated_split"),
        "overrides": first.get("overrides"),
        "model_overrides": first.get("model_overrides") or {},
        "model_data": model_data,
        "complete": True,
        "rows": rows,
    }


def markdown(payload: dict, command: str) -> str:
    lines = [
        f"Models on `{payload['data']}` ({payload['kind']}, {payload['evaluated_split']} split), mean ± std over seeds "
        f"{payload['seeds']} (the seeds every source has); accuracies/F1 in %. Combined, without training, from "
        f"{len(payload['combined_from'])} `msakit compare` results on the same data and budget (listed below). "
        "Time per epoch and samples/s are training-only, on each source's machine: compare them within a source.",
        "",
        *compare_table(payload["rows"]),
    ]
    for label, path in payload["model_data"].items():
        lines += ["", f"{label}: trained and scored on `{path}` (the same samples in another layout)."]
    for source, same in (payload.get("same_data") or {}).items():
        lines += ["", f"`{source}` read `{same['data']}`: the same bytes as `{payload['data']}` (sha256 {same['sha256'][:16]}…)."]
    lines += ["", "Sources:", ""]
    for source in payload["combined_from"]:
        m = source.get("machine") or {}
        lines += [f"- `{source['file']}` (rows {', '.join(source['rows'])}; seeds {source['seeds']}), on "
                  f"{m.get('platform')}, {m.get('cores_visible')} cores visible, torch {m.get('torch')}, made with:",
                  "", f"      {source['command']}", ""]
    lines += ["Combined with:", "", f"    {command}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path, help="compare.json files")
    parser.add_argument("--output", required=True, type=Path, help="folder for compare.md/.json/.png")
    args = parser.parse_args()
    try:
        payload = combine(args.sources)
    except CombineError as error:
        sys.exit(f"combine_compare: {error}")
    command = " ".join(["python", "benchmarks/combine_compare.py", *sys.argv[1:]])
    payload["command"] = command
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "compare.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.output / "compare.md").write_text(markdown(payload, command))
    plot_compare(payload, args.output / "compare.png")
    print((args.output / "compare.md").read_text())


if __name__ == "__main__":
    main()
