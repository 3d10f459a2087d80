"""Score video (or audio) files with a trained run: extract them the way the run's training
features were extracted, predict, and write a CSV and a JSON of per-clip results."""

from __future__ import annotations

from pathlib import Path

from msakit.training.runs import predict_split, seed_dirs


# Scores within +-threshold of 0 are "neutral": MOSI/MOSEI round to the nearest integer class
# (Acc-3 style), CH-SIMS's [-1, 1] scale uses its 0.1 band.
_NEUTRAL_BAND = {"mosi": 0.5, "mosei": 0.5, "sims": 0.1}


def sentiment_class(score: float, kind: str = "mosi") -> str:
    band = _NEUTRAL_BAND.get(kind, 0.5)
    return "negative" if score < -band else "positive" if score > band else "neutral"


def predict_video(run_dir: str | Path, videos, output: str | Path, *, kind: str | None = None, device: str = "auto",
                  workers: int = 1, progress: bool = True) -> dict:
    """Extract ``videos`` with the run's extractor settings, predict, and write ``output`` as CSV
    and JSON (same stem): per clip the score, its class, unimodal scores (models that have
    them) and the transcript; clips that could not be used are listed with the reason.
    Returns ``{"predictions": [...], "failures": [...], "csv": Path, "json": Path}``."""
    import csv
    import json
    import tempfile

    from msakit.errors import DataError, RunDirError
    from msakit.extract import ExtractSettings, check_compatible, describe, list_clips, run_sidecar
    from msakit.extract import extract as run_extract
    from msakit.training.checkpoint import atomic_write

    seed_dir = seed_dirs(Path(run_dir))[0]
    trained = run_sidecar(seed_dir)
    if trained is None:
        raise RunDirError(f"{seed_dir}: no extractor description (best/extractor.json); predict --video needs a run trained on "
                          "features made by `msakit extract`")
    try:
        settings = ExtractSettings(**trained["settings"]).validate()
    except (TypeError, KeyError) as exc:
        raise RunDirError(f"{seed_dir}/best/extractor.json: settings this msakit does not know ({exc}); use the msakit release that trained it") from None
    check_compatible(trained, describe(settings), str(seed_dir))
    clips = list_clips(list(videos))
    with tempfile.TemporaryDirectory(prefix="msakit-video-") as temp:
        try:
            result = run_extract(clips_paths := [c.path for c in clips], Path(temp) / "clips.pkl", settings=settings, workers=workers,
                                 progress=progress)
        except DataError as exc:
            raise DataError(f"no video could be used: {exc}") from None
        predictions, target, used_kind = predict_split(seed_dir, result.output, kind, "test", device, require_labels=False)
        texts = dict(zip(target.ids, target.raw_text)) if target.raw_text is not None else {}
    path_of = {c.id: str(p) for c, p in zip(clips, clips_paths)}
    rows = []
    for i, clip_id in enumerate(target.ids):
        score = float(predictions["m"][i])
        row = {"video": path_of.get(clip_id, clip_id), "score": round(score, 4), "class": sentiment_class(score, used_kind)}
        row.update({f"score_{m}": round(float(predictions[m][i]), 4) for m in ("t", "a", "v") if m in predictions})
        row["transcript"] = texts.get(clip_id, "")
        rows.append(row)
    output = Path(output)
    csv_path, json_path = output.with_suffix(".csv"), output.with_suffix(".json")
    columns = list(rows[0]) if rows else ["video", "score", "class", "transcript"]

    def write_csv(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=columns + ["error"])
            writer.writeheader()
            writer.writerows(rows)
            writer.writerows({"video": f["path"], "error": f["reason"]} for f in result.failures)

    atomic_write(csv_path, write_csv)
    payload = {"run": str(seed_dir), "kind": used_kind, "predictions": rows, "failures": result.failures}
    atomic_write(json_path, lambda p: p.write_text(json.dumps(payload, indent=2, ensure_ascii=False)))
    return {**payload, "csv": csv_path, "json": json_path}


__all__ = ["predict_video", "sentiment_class"]
