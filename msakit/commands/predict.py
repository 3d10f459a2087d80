"""``msakit predict``: a CSV of a trained run's predictions on a feature pickle, or on video files."""

from __future__ import annotations

import sys
from pathlib import Path

from msakit.errors import ConfigError


def add_parser(sub, common) -> None:
    p = sub.add_parser("predict", parents=[common], help="write a CSV of a trained run's predictions on a feature pickle (or on video files)")
    p.add_argument("run_dir")
    p.add_argument("--data", help="feature pickle to predict on")
    p.add_argument("--video", nargs="+", metavar="VIDEO", help="video files: extract with the run's extractor settings, then predict")
    p.add_argument("--workers", type=int, help="with --video: clips extracted in parallel (default 1; with --engine ray: every CPU of the cluster)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="with --video: extract on this machine (default) or on a Ray cluster (needs msakit[distributed])")
    p.add_argument("--address", help="with --engine ray: the Ray cluster to join (HOST:6379, ray://HOST:10001 or auto; default: a local one)")
    p.add_argument("--transcript", action="append", metavar="TEXT",
                   help="with --video: a clip's transcript instead of speech recognition; once per video, in order ('' to recognise)")
    p.add_argument("--video-id", action="append", metavar="ID",
                   help="with --video: the video a clip was cut from, once per video, in order; a run trained with data.context reads "
                        "the clips of one video as each other's neighbours")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (inputs are never written over)")
    p.add_argument("--output", required=True, help="CSV file to write (with --video also a .json beside it); never one of the inputs")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"])
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")


def _shown(text: str) -> str:
    """``text`` for a terminal: control characters escaped (a file name or transcript may hold them)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _video_table(result: dict) -> str:
    """The clips in their order: score, class, unimodal heads where the model has them, the
    transcript, then each clip's warnings; failed clips with their reason."""
    rows = result["predictions"]
    unimodal = [m for m in ("text", "audio", "vision") if any(m in r.get("unimodal", {}) for r in rows)]
    lines = [f"{'video':<32} {'score':>7} {'class':<9}" + "".join(f" {m[:6]:>7}" for m in unimodal) + "  transcript"]
    entries = [(r["index"], r, None) for r in rows] + [(f["index"], None, f) for f in result["failures"]]
    for _, row, failure in sorted(entries, key=lambda e: e[0]):
        if failure is not None:
            lines.append(f"{_shown(Path(failure['video']).name)[-32:]:<32} not scored ({failure['error']['code']}): {_shown(failure['error']['message'])}")
            continue
        name = _shown(Path(row["video"]).name)
        lines.append(f"{name[-32:]:<32} {row['score']:>7.3f} {row['class']:<9}"
                     + "".join(f" {row['unimodal'][m]:>7.3f}" if m in row.get("unimodal", {}) else f" {'-':>7}" for m in unimodal)
                     + f"  {_shown(row['transcript'][:60]) or '(no transcript)'}")
        lines += [f"{'':<32} warning ({w['code']}): {_shown(w['message'])}" for w in row["warnings"]]
    if unimodal:
        lines.append("text/audio/vision: the model's own unimodal heads (parts of the model), not separate scores")
    return "\n".join(lines)


def run(args, command_line: str) -> int | None:
    import msakit

    if args.video:
        if args.data:
            raise ConfigError("predict: give --data (a feature pickle) or --video (video files), not both")
        from msakit.api import predict_video

        workers = args.workers if args.workers is not None or args.engine == "ray" else 1
        result = predict_video(args.run_dir, args.video, args.output, kind=args.kind, device=args.device, workers=workers,
                               transcripts=args.transcript, overwrite=args.overwrite, video_ids=args.video_id, engine=args.engine,
                               address=args.address)
        print(_video_table(result))
        print(f"predictions written to {result['csv']} and {result['json']}")
        if result["failures"]:  # exit 1: results written, but not every clip could be scored
            scored = len(result["predictions"])
            print(f"msakit predict: {len(result['failures'])} of {scored + len(result['failures'])} clip(s) not scored "
                  f"(reasons in the table above and the CSV's error column)", file=sys.stderr)
            return 1
    else:
        if not args.data:
            raise ConfigError("predict: give --data (a feature pickle) or --video (video files)")
        if args.transcript or args.video_id:
            raise ConfigError("predict: --transcript and --video-id go with --video (one per video file)")
        path = msakit.predict(args.run_dir, args.data, args.output, kind=args.kind, split=args.split, device=args.device,
                              overwrite=args.overwrite)
        print(f"predictions written to {path}")
