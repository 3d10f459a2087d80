"""Speed and peak memory of each extraction feature set (``msakit extract --audio-features /
--vision-features``), on the shared media and on a 10-minute clip.

    .venv/bin/python benchmarks/featureset_speed.py [--minutes 10] [--sets descriptors,egemaps_lld,...] [--skip-long SET,...]

Each set runs alone in one ``msakit extract`` process (fresh output and cache, 1 worker) on the
modality it produces (``--modalities a`` for audio sets, ``v`` for vision sets), so its rate is
that set's own cost plus decoding and start-up. Speed: seconds of media per wall-clock second of
the whole process; CPU: user + system seconds of the process per second of media; memory: peak
summed resident memory of the process tree (sampled every 0.1 s).

The encoder sets use randomly initialised models of the published sizes, built here and saved to
a temporary directory (speed does not depend on the weights; nothing downloads): wav2vec 2.0
base (95 M parameters, 12 layers, 768 wide; 50 frames/s) and DINOv2-small (22 M parameters,
patch 14, 224 px crops). Inputs: the real clips in shared/data/media (six GRID videos, four speech
files, 44.5 s) and a 10-minute clip of the GRID clips concatenated (``extract_speed.make_long_clip``).
Writes benchmarks/results/featureset_speed.json and .md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import RESULTS, write_result  # noqa: E402
from benchmarks.extract_speed import _tree_rss, make_long_clip, media_dir  # noqa: E402

AUDIO = ["descriptors", "egemaps_lld", "egemaps_functionals", "compare_lld", "compare_functionals", "speech_encoder"]
VISION = ["facemesh", "image_encoder"]


def build_models(root: Path) -> dict[str, Path]:
    import torch
    from transformers import Dinov2Config, Dinov2Model, Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    out = {"speech": root / "wav2vec2-base-random", "image": root / "dinov2-small-random"}
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(str(out["speech"]))  # the defaults are wav2vec 2.0 base
    Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=224, patch_size=14)).save_pretrained(str(out["image"]))
    return out


def run(source: Path, output: Path, name: str, models: dict[str, Path]) -> dict:
    modality = "a" if name in AUDIO else "v"
    extra = ["--modalities", modality, f"--{'audio' if modality == 'a' else 'vision'}-features", name]
    if name == "speech_encoder":
        extra[-1] += f":{models['speech']}"
    if name == "image_encoder":
        extra[-1] += f":{models['image']}"
    command = [sys.executable, "-c", "import sys; from msakit.cli import main; sys.exit(main(sys.argv[1:]))", "extract", str(source), "-o",
               str(output), "--workers", "1", "--quiet", *extra]
    import json
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - start
    _, err = process.communicate()
    if process.returncode:
        raise RuntimeError(f"{name}: extract failed: {err[-1500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sidecar = json.loads(output.with_name(output.stem + ".extractor.json").read_text())
    media = sidecar["timing_s"]["media_s"]
    feature = sidecar["features"]["audio" if modality == "a" else "vision"]
    cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
    return {"set": name, "dim": feature["dim"], "rate_hz": feature["rate_hz"], "media_s": media, "wall_s": round(wall, 2),
            "media_s_per_s": round(media / wall, 2), "cpu_s_per_media_s": round(cpu / media, 4), "peak_rss_mib": round(peak / 2**20, 1),
            "load_before": round(load, 2), "clips": sidecar["clips"]["extracted"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sets", default=",".join(AUDIO + VISION))
    parser.add_argument("--skip-long", default="", help="sets not run on the long clip")
    parser.add_argument("--notes", help="a text file appended to the .md (the conditions of the run)")
    parser.add_argument("--merge", action="store_true", help="keep the rows of sets not run now from the existing results file")
    args = parser.parse_args()
    media = media_dir()
    if media is None:
        sys.exit("shared/data/media not found")
    sets = args.sets.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = build_models(tmp / "models")
        shared, grid = tmp / "shared", tmp / "grid"  # vision sets: the six GRID videos (the speech files have no picture)
        shared.mkdir()
        grid.mkdir()
        for clip in sorted((media / "grid").glob("*.mpg")) + sorted((media / "speech").iterdir()):
            if clip.suffix in (".mpg", ".wav", ".flac"):
                os.symlink(clip, shared / clip.name)
                if clip.suffix == ".mpg":
                    os.symlink(clip, grid / clip.name)
        long_dir = tmp / "long"
        long_dir.mkdir()
        make_long_clip(media, long_dir / "long.mp4", args.minutes)
        for name in sets:
            row = run(shared if name in AUDIO else grid, tmp / f"s_{name}.pkl", name, models)
            rows.append({"input": "shared media (10 clips)" if name in AUDIO else "shared GRID videos (6 clips)", **row})
            print(rows[-1], flush=True)
            if name not in args.skip_long.split(","):
                row = run(long_dir, tmp / f"l_{name}.pkl", name, models)
                rows.append({"input": f"{args.minutes:g}-minute clip", **row})
                print(rows[-1], flush=True)
    if args.merge and (RESULTS / "featureset_speed.json").is_file():
        import json

        kept = [r for r in json.loads((RESULTS / "featureset_speed.json").read_text())["rows"] if r["set"] not in sets]
        order = AUDIO + VISION
        rows = sorted(kept + rows, key=lambda r: (order.index(r["set"]), "minute" in r["input"]))
    payload = {"protocol": __doc__.strip().splitlines()[0], "rows": rows}
    write_result("featureset_speed", payload)
    lines = ["| input | set | dim | frames/s | media s/s | CPU s per media s | peak RSS MiB | load before |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['input']} | {r['set']} | {r['dim']} | {r['rate_hz'] or 'per clip'} | {r['media_s_per_s']} | {r['cpu_s_per_media_s']} | "
                     f"{r['peak_rss_mib']} | {r['load_before']} |")
    (RESULTS / "featureset_speed.md").write_text("# Feature-set speed and memory (msakit extract, 1 worker)\n\n" + __doc__.strip() + "\n\n" + "\n".join(lines) + "\n"
                                                 + (args.notes and Path(args.notes).read_text() or ""))


if __name__ == "__main__":
    main()
