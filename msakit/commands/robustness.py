"""``msakit robustness``: evaluate a trained run with modalities missing or corrupted."""

from __future__ import annotations

from pathlib import Path

from msakit.commands._common import _floats, add_run_evaluation_arguments


def add_parser(sub, common) -> None:
    p = sub.add_parser("robustness", parents=[common], help="evaluate a trained run with modalities missing or corrupted; write a table and a figure")
    add_run_evaluation_arguments(p)
    p.add_argument("--rates", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", help="rates of the missing / frame-drop / word-error curves")
    p.add_argument("--missing", default="each,all", help="'each' (a curve per modality), 'all' (every modality, each independently), sets like t+a, or 'none'")
    p.add_argument("--frame-drop", default="", help="modalities whose frames are zeroed at each rate, e.g. a,v")
    p.add_argument("--noise", default="", help="modalities given Gaussian noise at each --snr, e.g. a,v")
    p.add_argument("--snr", default="20,10,5,0,-5,-10", help="signal-to-noise ratios in dB for --noise (write --snr=-5,0 when the first is negative)")
    p.add_argument("--word-errors", default="", help="transcript word errors at each rate: drop, replace, or drop,replace")
    p.add_argument("--incomplete", action="store_true",
                   help="one curve where every modality loses words or frames at the same rate (LNLN's evaluation of incomplete data)")
    p.add_argument("--seed", type=int, default=0, help="corruption seed (the same for every model seed)")
    p.add_argument("--output", help="directory for robustness.json/.md/.png (default RUN_DIR/robustness)")


def run(args, command_line: str) -> int | None:
    from msakit.workflows.robustness import robustness

    grid = dict(rates=_floats(args.rates, "--rates"), missing=args.missing, frame_drop=args.frame_drop, noise=args.noise,
                snrs=_floats(args.snr, "--snr"), word_errors=args.word_errors, incomplete=args.incomplete)
    output = Path(args.output) if args.output else Path(args.run_dir) / "robustness"
    robustness(args.run_dir, args.data, kind=args.kind, split=args.split, grid=grid, corruption_seed=args.seed, output_dir=output,
               device=args.device, command=command_line)
    print((output / "robustness.md").read_text())
    print(f"written to {output}/robustness.json, .md, .png")
