"""Video extraction benchmark: speech recognition WER, face-found rate, speed per stage, memory.

    .venv/bin/python benchmarks/video_extract.py [--long-minutes 10]

1. Word error rate of the ASR (Moonshine tiny, shipped in moonshine-voice 0.0.4) on the real
   recordings in shared/data/media (GRID clips, public-domain speeches) and on generated
   sentences (espeak-ng text-to-speech, when installed).
2. The fraction of frames in which a face is found, per GRID clip.
3. Extraction speed per stage (decode, ASR, audio features, face) in seconds of video per
   second, and peak memory (each clip in a fresh process), for the short GRID clips and a long
   generated clip (a moving face and speech), to show memory stays bounded.
Writes benchmarks/results/video_extract.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_result  # noqa: E402

SENTENCES = [
    "The weather was lovely this morning and we walked to the park.",
    "I really did not enjoy the film, it was far too long.",
    "She bought three apples and a loaf of bread at the market.",
    "This is the best meal I have had in years.",
    "The train was late again and everyone was annoyed.",
    "Please close the window before you leave the room.",
    "He plays the piano every evening after dinner.",
    "The acting was wonderful but the story made no sense.",
    "We are going to visit our grandparents next week.",
    "I think the new phone is a waste of money.",
    "The children laughed when the dog chased its tail.",
    "It rained all day so we stayed inside and read books.",
    "The music in this movie is absolutely beautiful.",
    "My computer stopped working in the middle of the meeting.",
    "They built a small house near the river.",
    "The service at the hotel was slow and unfriendly.",
    "I would happily watch this show again.",
    "The teacher explained the lesson very clearly.",
    "Nothing about this product works the way it should.",
    "The garden is full of flowers in the spring.",
    "We finished the project two days early.",
    "The ending was sad but it felt right.",
]


def media_dir() -> Path | None:
    for parent in Path(__file__).resolve().parents[1:4]:
        if (parent / "shared" / "data" / "media").is_dir():
            return parent / "shared" / "data" / "media"
    return None


def transcribe(path: Path) -> str:
    from msakit.extract.asr import Recogniser
    from msakit.extract.decode import iter_audio

    recogniser = Recogniser()
    for chunk in iter_audio(path):
        recogniser.push(chunk)
    return recogniser.finish()


def wer_block(pairs: list[tuple[str, str, Path]]) -> dict:
    from msakit.extract.asr import word_error_rate, word_errors

    rows, refs, hyps = [], [], []
    for name, reference, path in pairs:
        hypothesis = transcribe(path)
        errors, words = word_errors(reference, hypothesis)
        rows.append({"file": name, "reference": reference, "hypothesis": hypothesis, "errors": errors, "words": words})
        refs.append(reference)
        hyps.append(hypothesis)
        print(f"  {name}: {errors}/{words}  {hypothesis}", flush=True)
    return {"wer": round(word_error_rate(refs, hyps), 4), "files": len(rows), "words": sum(r["words"] for r in rows), "per_file": rows}


def speak(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, stdout=subprocess.DEVNULL)
    return path


_CHILD = r"""
import json, resource, sys, time
from msakit.extract import ExtractSettings, extract_clip
timings = {}
start = time.perf_counter()
out = extract_clip(sys.argv[1], ExtractSettings(), None, timings)
timings["total"] = time.perf_counter() - start
print(json.dumps({"timings": timings, "duration_s": out["duration_s"], "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "audio_frames": len(out["audio"]), "vision_frames": len(out["vision"]), "face_fraction": float(out["vision"][:, 0].mean()),
                  "transcript_words": len(out["text"].split())}))
"""


def measure_clip(path: Path) -> dict:
    """Extract one clip (all stages, ASR included) in a fresh process: stage times and peak memory."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    duration = result["duration_s"]
    result["video_s_per_s"] = {k: round(duration / v, 2) for k, v in result["timings"].items() if v > 0}
    result["timings"] = {k: round(v, 3) for k, v in result["timings"].items()}
    result["file_mib"] = round(path.stat().st_size / 2**20, 2)
    return result


def long_clip(path: Path, minutes: float, work: Path) -> Path:
    """A ``minutes``-long clip: the face drifting and zooming slowly, speech (espeak-ng) or a voiced sound."""
    import numpy as np

    from msakit.extract.decode import iter_audio
    from msakit.extract.media import voice, write_clip

    seconds = minutes * 60
    if shutil.which("espeak-ng"):
        pieces = []
        for i, sentence in enumerate(SENTENCES):
            pieces.append(np.concatenate(list(iter_audio(speak(sentence, work / f"long_{i}.wav")))))
            pieces.append(np.zeros(8000, np.float32))
        block = np.concatenate(pieces)
        audio = np.tile(block, int(np.ceil(seconds * 16000 / block.size)))[: int(seconds * 16000)] * 0.8
    else:
        audio = voice(seconds)
    return write_clip(path, seconds=seconds, fps=25, size=(480, 360), audio=audio,
                      scale=lambda t: 0.6 + 0.15 * np.sin(t / 7), centre=lambda t: (0.5 + 0.1 * np.sin(t / 5), 0.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--skip-long", action="store_true")
    args = parser.parse_args()
    results: dict = {"load_average_at_start": os.getloadavg()}
    media = media_dir()
    work = Path(tempfile.mkdtemp(prefix="msakit-bench-video-"))
    try:
        if media is not None:
            rows = dict(line.split("\t", 1) for line in (media / "transcripts.tsv").read_text().strip().splitlines()[1:])
            print("ASR on shared/data/media:", flush=True)
            results["asr_real_speech"] = wer_block([(n, t, media / n) for n, t in rows.items() if n.startswith("speech/")])
            results["asr_grid"] = wer_block([(n, t, media / n) for n, t in rows.items() if n.startswith("grid/")])
        if shutil.which("espeak-ng"):
            print("ASR on generated sentences (espeak-ng):", flush=True)
            pairs = [(f"espeak_{i:02d}", s, speak(s, work / f"s{i}.wav")) for i, s in enumerate(SENTENCES)]
            results["asr_generated"] = wer_block(pairs)
            results["asr_generated"]["tts"] = "espeak-ng en-us, 150 words/min"
        if media is not None:
            print("Speed and memory per GRID clip (fresh process each):", flush=True)
            grid = {p.name: measure_clip(p) for p in sorted((media / "grid").glob("*.mpg"))}
            results["grid"] = grid
            results["grid_face_found_min"] = min(g["face_fraction"] for g in grid.values())
            for name, g in grid.items():
                print(f"  {name}: face {g['face_fraction']:.0%}, {g['video_s_per_s']}, peak {g['peak_rss_mib']:.0f} MiB", flush=True)
        if not args.skip_long:
            print(f"Long clip ({args.long_minutes} min):", flush=True)
            path = long_clip(work / "long.mp4", args.long_minutes, work)
            results["long_clip"] = {"minutes": args.long_minutes, **measure_clip(path)}
            print(f"  {results['long_clip']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    print(f"written to {write_result('video_extract', results)}")


if __name__ == "__main__":
    main()
