"""End to end on planted clips: do extracted audio and vision carry a signal through training?

    .venv/bin/python benchmarks/video_planted.py [--clips 72] [--epochs 12]

Generates labelled clips (label y uniform in [-3, 3]) where the label is carried three ways:
the words (a transcript in the manifest that gives only the polarity: a positive phrase when
y > 0, a negative one otherwise), the voice (pitch 160 + 20*y Hz and loudness rising with y) and
the face (the photograph tilted by 5*y degrees, i.e. head roll). Then `msakit extract` ->
`msakit train` (Self-MM, 3 seeds) on t,a,v and on t alone -> test MAE and Corr. If the
extracted audio and vision carry the planted signal, the multimodal model beats text alone.
Writes benchmarks/results/video_planted.json.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_result  # noqa: E402

PHRASES = {
    "positive": ["i really liked this movie", "the film was good and fun", "what a nice story", "i enjoyed the acting"],
    "negative": ["i did not like this movie", "the film was bad and dull", "what a poor story", "the acting was weak"],
}


def make_clips(folder: Path, n: int, seed: int) -> Path:
    from PIL import Image

    from msakit.extract.media import voice, write_clip

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        y = float(rng.uniform(-3, 3))
        polarity = "positive" if y > 0 else "negative"
        text = PHRASES[polarity][int(rng.integers(len(PHRASES[polarity])))]
        sound = voice(2.0, f0=160 + 20 * y, loudness=0.12 + 0.04 * (y + 3), seed=i)
        angle = 5.0 * y
        write_clip(folder / f"clip{i:03d}.mp4", seconds=2.0, audio=sound, scale=lambda t: 0.75,
                   transform=lambda image, a=angle: np.asarray(Image.fromarray(image).rotate(a, resample=Image.BILINEAR, fillcolor=(90, 90, 90))))
        split = "train" if i < int(0.66 * n) else "valid" if i < int(0.83 * n) else "test"
        rows.append({"path": f"clip{i:03d}.mp4", "label": f"{y:.4f}", "split": split, "text": text, "video_id": f"clip{i:03d}"})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import msakit

    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(tempfile.mkdtemp(prefix="msakit-planted-"))
    try:
        manifest = make_clips(work / "clips", args.clips, seed=0)
        extracted = msakit.extract(manifest, work / "feats.pkl", workers=args.workers, progress=False)
        print(extracted.report(), flush=True)
        results = {"clips": args.clips, "epochs": args.epochs, "seeds": seeds, "extract_seconds": round(extracted.seconds, 1),
                   "failed": extracted.failures, "variants": {}}
        for name, modalities in (("text+audio+vision", "t,a,v"), ("text only", "t"), ("audio+vision", "a,v")):
            overrides = {"data": {"modalities": modalities}, "train": {"max_epochs": args.epochs, "num_threads": 1, "progress": False}}
            summary = msakit.train("self_mm", work / "feats.pkl", seeds=seeds, run_dir=work / "runs" / modalities.replace(",", ""),
                                   overrides=overrides)
            results["variants"][name] = {"modalities": modalities, "summary": summary.summary, "per_seed": summary.per_seed}
            print(f"{name}: MAE {summary.summary['MAE']['mean']:.3f} ± {summary.summary['MAE']['std']:.3f}, "
                  f"Corr {summary.summary['Corr']['mean']:.3f} ± {summary.summary['Corr']['std']:.3f}", flush=True)
        multi, text = results["variants"]["text+audio+vision"]["per_seed"], results["variants"]["text only"]["per_seed"]
        results["multimodal_beats_text_every_seed"] = {
            "MAE": all(multi[s]["MAE"] < text[s]["MAE"] for s in multi), "Corr": all(multi[s]["Corr"] > text[s]["Corr"] for s in multi)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"written to {write_result('video_planted', results)}")


if __name__ == "__main__":
    main()
