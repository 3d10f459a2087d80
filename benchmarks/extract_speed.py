"""Extraction speed per stage and overall, peak memory, and word error rate: this tree against
an earlier commit ("before"), alternated in one session so both see the same machine load.

    .venv/bin/python benchmarks/extract_speed.py [--before a2ca914] [--minutes 10] [--workers 1,2] [--long-before]

Inputs: the real recordings in shared/data/media (six GRID clips with video, four speech files;
44.5 s), and a 10-minute clip made here by concatenating the GRID clips (video and audio) over
and over, whose reference transcript is the GRID transcripts in the same order. Each
extraction is one ``msakit extract`` process (fresh output and cache); memory is the peak of the
summed resident memory of that process and its workers (sampled every 0.1 s from /proc).
Per-stage rates are seconds of media per second spent in that stage (summed over clips, from
the sidecar; stages that overlap in time each count their own wall time, so since the audio and
video stages of a clip run at the same time the stage times sum to more than the clip's); overall
is seconds of media per wall-clock second of the whole ``msakit extract`` process, start-up
included; CPU-seconds (user + system, the process and its workers) per second of media do not
depend on the machine's load the way wall time does. The speech-recognition-only passes also time the recogniser alone (every shared file
three times over in one process: seconds of audio per second).
WER: GRID references read as the grammar reads ("bin blue at f two now"); hypotheses get the
same normalisation (letters glued to digits split: "f2" -> "f two").
Writes benchmarks/results/extract_speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import RESULTS, write_result  # noqa: E402


def media_dir() -> Path | None:
    for parent in REPO.parents:
        if (parent / "shared" / "data" / "media").is_dir():
            return parent / "shared" / "data" / "media"
    return None


def references(media: Path) -> dict[str, str]:
    lines = (media / "transcripts.tsv").read_text().strip().splitlines()[1:]
    return dict(line.split("\t", 1) for line in lines)


def make_long_clip(media: Path, path: Path, minutes: float) -> list[str]:
    """GRID clips concatenated (video re-encoded as MPEG-4 part 2, audio as AAC) to ``minutes``;
    returns the order of the clips (for the reference transcript)."""
    import av
    import numpy as np

    clips = sorted((media / "grid").glob("*.mpg"))
    decoded = []
    for clip in clips:
        with av.open(str(clip)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        with av.open(str(clip)) as container:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
            audio = np.concatenate([o.to_ndarray().reshape(-1) for f in container.decode(audio=0) for o in resampler.resample(f)])
        n = min(len(frames), int(audio.size / 16000 * 25))
        decoded.append((clip.name, frames[:n], audio[: int(n / 25 * 16000)]))
    order, total = [], 0.0
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=25)
        height, width = decoded[0][1][0].shape[:2]
        video.width, video.height, video.pix_fmt, video.bit_rate = width, height, "yuv420p", 1_000_000
        sound = out.add_stream("aac", rate=16000)
        sound.layout = "mono"
        samples = 0
        i = 0
        while total < minutes * 60:
            name, frames, audio = decoded[i % len(decoded)]
            for frame in frames:
                for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for start in range(0, audio.size, 1024):
                chunk = audio[start : start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, samples, Fraction(1, 16000)
                samples += chunk.size
                for packet in sound.encode(frame):
                    out.mux(packet)
            order.append(f"grid/{name}")
            total += len(frames) / 25
            i += 1
        for stream in (video, sound):
            for packet in stream.encode():
                out.mux(packet)
    return order


def _tree_rss(pid: int) -> int:
    """Summed resident memory (bytes) of ``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            pages = int(Path(f"/proc/{entry}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack += children.get(p, [])
    return total


def run_extract(tree: Path, source: Path, output: Path, workers: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", "import sys; from msakit.cli import main; sys.exit(main(sys.argv[1:]))", "extract", str(source), "-o",
               str(output), "--workers", str(workers), "--quiet"]
    import resource

    load_before = os.getloadavg()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - start
    out, err = process.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the process and its (reaped) workers
    if process.returncode != 0:
        raise RuntimeError(f"extract failed ({process.returncode}): {err[-2000:]}")
    cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
    return {"wall_s": wall, "cpu_s": round(cpu, 2), "peak_rss_mib": round(peak / 2**20, 1), "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()], "stderr_lines": len([line for line in err.splitlines() if line.strip()])}


def summarise(output: Path, refs: dict[str, str], long_order: list[str] | None, tree_label: str) -> dict:
    sys.path.insert(0, str(REPO))
    from msakit.extract.asr import word_errors

    sidecar = json.loads(output.with_name(output.stem + ".extractor.json").read_text())
    data = pickle.loads(output.read_bytes())["test"]
    timing = sidecar.get("timing_s", {})
    stages = timing.get("summed_over_clips") or {k: v for k, v in timing.items() if k != "total"}
    if "decode_audio" in stages:  # the earlier layout of the sidecar
        stages = {"decode": stages.get("decode_audio", 0) + stages.get("decode_video", 0), "asr": stages.get("asr", 0),
                  "audio": stages.get("audio", 0), "face": stages.get("face", 0)}
    per_clip = sidecar.get("clips", {}).get("per_clip")
    media_s = sum(c["duration_s"] for c in per_clip.values()) if per_clip else None
    if media_s is None:  # before: durations from the audio lengths (25 frames/s)
        media_s = float(sum(data["audio_lengths"])) / 25.0
    errors = words = 0
    grid_errors = grid_words = speech_errors = speech_words = 0
    hyps = {}
    for clip_id, text in zip(data["id"], data["raw_text"]):
        hyps[clip_id] = text
        if long_order is not None:
            ref = " ".join(refs[name] for name in long_order)
        else:
            key = next(k for k in refs if Path(k).stem == clip_id.split("$_$")[-1])
            ref = refs[key]
        e, n = word_errors(ref, text)
        errors, words = errors + e, words + n
        if long_order is None and clip_id.startswith("grid"):
            grid_errors, grid_words = grid_errors + e, grid_words + n
        elif long_order is None:
            speech_errors, speech_words = speech_errors + e, speech_words + n
    result = {"tree": tree_label, "media_s": round(media_s, 2),
              "stage_media_s_per_s": {k: round(media_s / v, 2) for k, v in sorted(stages.items()) if k in ("decode", "asr", "audio", "face") and v > 0},
              "stage_seconds": {k: round(v, 2) for k, v in sorted(stages.items())}, "wer": round(errors / max(1, words), 4), "words": words}
    if long_order is None:
        result["wer_grid"] = round(grid_errors / max(1, grid_words), 4)
        result["wer_speech"] = round(speech_errors / max(1, speech_words), 4)
        result["transcripts"] = hyps
    else:
        result["transcript_head"] = next(iter(hyps.values()))[:300]
    return result


_ASR_SCRIPT = """
import json, sys
from pathlib import Path
from msakit.extract.asr import Recogniser
from msakit.extract.decode import iter_audio
import time
audio = {name: list(iter_audio(Path(sys.argv[1]) / name)) for name in dict.fromkeys(sys.argv[2:])}
try:
    from msakit.extract.asr import load_model
    load_model()  # loading is not timed
except ImportError:
    pass
out, seconds, start = [], 0.0, time.perf_counter()
for name in sys.argv[2:]:
    r = Recogniser()
    for chunk in audio[name]:
        r.push(chunk)
        seconds += chunk.size / 16000
    out.append([name, r.finish()])
print(json.dumps({"pairs": out, "audio_s": seconds, "wall_s": time.perf_counter() - start}))
"""


def asr_only(tree: Path, media: Path, names: list[str], repeats: int) -> tuple[list[dict[str, str]], dict]:
    """Transcripts of every shared file by that tree's recogniser, ``repeats`` times in one
    process (the earlier recogniser's answers depended on what it had heard before), and the
    recogniser's speed there (seconds of audio per second, model loading excluded)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    load = os.getloadavg()[0]
    result = subprocess.run([sys.executable, "-c", _ASR_SCRIPT, str(media)] + names * repeats, cwd=tree, env=env, capture_output=True,
                            text=True, check=True)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    pairs = out["pairs"]
    speed = {"audio_s": round(out["audio_s"], 2), "wall_s": round(out["wall_s"], 2), "audio_s_per_s": round(out["audio_s"] / out["wall_s"], 2),
             "load_before": round(load, 2)}
    return [dict(pairs[i * len(names) : (i + 1) * len(names)]) for i in range(repeats)], speed


def wer_table(refs: dict[str, str], transcripts: dict[str, str]) -> dict:
    from msakit.extract.asr import word_errors

    groups = {"grid": [0, 0], "speech": [0, 0]}
    for name, text in transcripts.items():
        e, n = word_errors(refs[name], text)
        group = groups["grid" if name.startswith("grid") else "speech"]
        group[0] += e
        group[1] += n
    return {k: round(e / max(1, n), 4) for k, (e, n) in groups.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="a2ca914", help="commit to compare against (checked out into a temporary worktree)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--before-long-minutes", type=float, default=2.0,
                        help="length of the long clip for the earlier commit (slower: a shorter clip keeps the session short)")
    parser.add_argument("--long-workers", default="1,2", help="workers for the long clip (this tree; the earlier commit too with --long-before)")
    parser.add_argument("--long-before", action="store_true", help="the earlier commit on the full long clip too, alternated with this tree")
    parser.add_argument("--name", default="extract_speed", help="result file stem under benchmarks/results/ (keeps an earlier run's files)")
    args = parser.parse_args()
    media = media_dir()
    if media is None:
        print("shared/data/media not found: nothing to measure")
        return
    refs = references(media)
    work = Path(tempfile.mkdtemp(prefix="msakit-extract-bench-"))
    before_tree = work / "before"
    subprocess.run(["git", "worktree", "add", "--detach", str(before_tree), args.before], cwd=REPO, check=True, capture_output=True)
    try:
        shared = work / "shared_media"
        for name in refs:
            (shared / Path(name).parent).mkdir(parents=True, exist_ok=True)
            shutil.copy(media / name, shared / name)
        inputs = [("shared media (44.5 s, 10 files)", shared, None, [int(w) for w in args.workers.split(",")], ("after", "before"))]
        if not args.skip_long:
            long_dir, short_dir = work / "long", work / "long_before"
            long_dir.mkdir()
            order = make_long_clip(media, long_dir / "long.mp4", args.minutes)
            inputs.append((f"{args.minutes:g}-minute clip (GRID concatenated)", long_dir, order, [int(w) for w in args.long_workers.split(",")],
                           ("after", "before") if args.long_before else ("after",)))
            if args.before_long_minutes > 0:
                short_dir.mkdir()
                short_order = make_long_clip(media, short_dir / "long.mp4", args.before_long_minutes)
                inputs.append((f"{args.before_long_minutes:g}-minute clip (GRID concatenated)", short_dir, short_order, [1], ("after", "before")))
        names = sorted(refs)
        asr: dict = {}
        for tree_label, tree in (("after", REPO), ("before", before_tree)):
            passes, speed = asr_only(tree, media, names, 3)  # every file three times over, in one process
            asr[tree_label] = {"speed": speed, "wer_per_pass": [wer_table(refs, t) for t in passes],
                               "distinct_transcripts_over_3_passes": {n: len({t[n] for t in passes}) for n in names},
                               "transcripts_first_pass": passes[0]}
            print(tree_label, "ASR WER per pass", asr[tree_label]["wer_per_pass"], "speed", speed, flush=True)
        runs = []
        trees = {"after": REPO, "before": before_tree}
        for label, source, order, worker_counts, tree_labels in inputs:
            for workers in worker_counts:
                for tree_label in tree_labels:  # alternated: the same load for both
                    tree = trees[tree_label]
                    output = work / f"out_{tree_label}_{workers}_{len(runs)}.pkl"
                    measured = run_extract(tree, source, output, workers)
                    summary = summarise(output, refs, order, tree_label)
                    row = {"input": label, "workers": workers, **summary, **measured,
                           "overall_media_s_per_s": round(summary["media_s"] / measured["wall_s"], 2),
                           "media_s_per_cpu_s": round(summary["media_s"] / max(measured["cpu_s"], 1e-9), 2)}
                    runs.append(row)
                    print(f"{label:40s} w={workers} {tree_label:6s} overall {row['overall_media_s_per_s']:6.2f} s/s  stages "
                          f"{row['stage_media_s_per_s']}  WER {row['wer']:.3f}  peak {row['peak_rss_mib']} MiB  load {measured['load_before'][0]}",
                          flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=REPO, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    path = write_result(args.name, {"before_commit": args.before, "asr_only": asr, "runs": runs,
                                          "note": "2 shared cores; other engineers' jobs ran at the same time (load averages per run)"})
    lines = ["| input | workers | tree | overall (s media / s) | s media / CPU-s | decode | ASR | audio | face | WER | peak MiB | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s = r["stage_media_s_per_s"]
        lines.append(f"| {r['input']} | {r['workers']} | {r['tree']} | {r['overall_media_s_per_s']} | {r['media_s_per_cpu_s']} | {s.get('decode', '')} | "
                     f"{s.get('asr', '')} | {s.get('audio', '')} | {s.get('face', '')} | {r['wer']} | {r['peak_rss_mib']} | {r['load_before'][0]} |")
    md = RESULTS / f"{args.name}.md"
    notes = ""  # hand-written reading below the marker survives a rerun
    if md.exists() and "<!-- notes -->" in md.read_text():
        notes = "\n<!-- notes -->" + md.read_text().split("<!-- notes -->", 1)[1]
    asr_lines = ["", "| speech recognition alone (shared files x3, one process) | tree | s audio / s | WER grid | WER speech | load |",
                 "|---|---|---|---|---|---|"]
    for tree_label, info in asr.items():
        wer = info["wer_per_pass"][0]
        asr_lines.append(f"| {info['speed']['audio_s']} s of audio | {tree_label} | {info['speed']['audio_s_per_s']} | {wer['grid']} | "
                         f"{wer['speech']} | {info['speed']['load_before']} |")
    md.write_text("\n".join(lines + asr_lines) + "\n" + notes)
    print(f"wrote {path} and {md.name}")


if __name__ == "__main__":
    main()
