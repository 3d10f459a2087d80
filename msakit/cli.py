"""Command line: ``msakit train | evaluate | predict | robustness | synth``, each over a function in ``msakit.api``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected comma-separated integers, got {text!r}") from None


def _floats(text: str, option: str) -> list[float]:
    from msakit.errors import ConfigError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from msakit.models import available_models

    parser = argparse.ArgumentParser(prog="msakit", description="Multimodal sentiment analysis: train, evaluate, predict.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model, one run per seed, and print test metrics")
    p.add_argument("--model", default="dma", choices=available_models())
    p.add_argument("--data", default="synthetic", help="MMSA feature pickle, a directory of text,label tables, or 'synthetic' (default)")
    p.add_argument("--kind", default="mosi", choices=["mosi", "mosei", "sims"], help="dataset kind: label range, metrics and defaults")
    p.add_argument("--seeds", type=_seeds, default=[1111], help="comma-separated, e.g. 1111,1112,1113")
    p.add_argument("--modalities", help="subset of t,a,v to use, e.g. t or t,a (default: all the data has)")
    p.add_argument("--run-dir", help="where to write the run (default runs/<model>_<data>_<time>)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--epochs", type=int, help="maximum epochs (train.max_epochs)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value, e.g. model.post_text_dim=64 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last finished epoch")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("evaluate", help="metrics of a trained run on a data file")
    p.add_argument("run_dir")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"], help="default: the kind the run was trained on")
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("predict", help="write a CSV of a trained run's predictions on a feature pickle")
    p.add_argument("run_dir")
    p.add_argument("--data", required=True)
    p.add_argument("--output", required=True, help="CSV file to write")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"])
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("ablate", help="train a model with several alignment pair sets (and without ULGM); write a table and a plot")
    p.add_argument("--model", default="dma", choices=available_models())
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", default="mosi", choices=["mosi", "mosei", "sims"])
    p.add_argument("--seeds", type=_seeds, default=[1111, 1112, 1113])
    p.add_argument("--pair-sets", default="none;a-v;t-a;t-v;all", help="';'-separated pair sets (a set may hold commas: 't-a,t-v')")
    p.add_argument("--no-ulgm-for", default="none;a-v", help="';'-separated pair sets also trained without ULGM ('' for none)")
    p.add_argument("--align-dim", type=int, default=32)
    p.add_argument("--output", required=True, help="directory for ablation.json/.md/.png (and the runs, unless --runs-dir)")
    p.add_argument("--runs-dir", help="where the variants' runs go; finished seeds there are reused")
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")

    p = sub.add_parser("robustness", help="evaluate a trained run with modalities missing or corrupted; write a table and a figure")
    p.add_argument("run_dir")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"], help="default: the kind the run was trained on")
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")
    p.add_argument("--rates", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", help="rates of the missing / frame-drop / word-error curves")
    p.add_argument("--missing", default="each,all", help="'each' (a curve per modality), 'all' (every modality, each independently), sets like t+a, or 'none'")
    p.add_argument("--frame-drop", default="", help="modalities whose frames are zeroed at each rate, e.g. a,v")
    p.add_argument("--noise", default="", help="modalities given Gaussian noise at each --snr, e.g. a,v")
    p.add_argument("--snr", default="20,10,5,0,-5,-10", help="signal-to-noise ratios in dB for --noise (write --snr=-5,0 when the first is negative)")
    p.add_argument("--word-errors", default="", help="transcript word errors at each rate: drop, replace, or drop,replace")
    p.add_argument("--seed", type=int, default=0, help="corruption seed (the same for every model seed)")
    p.add_argument("--output", help="directory for robustness.json/.md/.png (default RUN_DIR/robustness)")

    p = sub.add_parser("synth", help="write the synthetic dataset as an MMSA feature pickle")
    p.add_argument("output")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-valid", type=int, default=150)
    p.add_argument("--n-test", type=int, default=300)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import msakit
    from msakit.config import parse_set_options
    from msakit.metrics import format_table

    try:
        if args.command == "train":
            overrides = parse_set_options(args.set)
            if args.modalities:
                overrides["data"]["modalities"] = args.modalities
            if args.device:
                overrides["train"]["device"] = args.device
            if args.epochs:
                overrides["train"]["max_epochs"] = args.epochs
            if args.quiet:
                overrides["train"]["progress"] = "false"
            if args.resume and not args.run_dir:
                raise ValueError("--resume needs --run-dir (the run to continue)")
            result = msakit.train(args.model, args.data, kind=args.kind, seeds=args.seeds, run_dir=args.run_dir, overrides=overrides, resume=args.resume)
            print(result.table())
            print(f"run written to {result.run_dir}")
        elif args.command == "evaluate":
            result = msakit.evaluate(args.run_dir, args.data, kind=args.kind, split=args.split, device=args.device)
            print(format_table(result["summary"], title=f"{args.split} metrics of {args.run_dir}"))
            print(json.dumps(result["per_seed"], indent=2))
        elif args.command == "predict":
            path = msakit.predict(args.run_dir, args.data, args.output, kind=args.kind, split=args.split, device=args.device)
            print(f"predictions written to {path}")
        elif args.command == "ablate":
            from msakit.ablation import ablate

            overrides = parse_set_options(args.set)
            overrides["train"].setdefault("progress", "false")
            if args.epochs:
                overrides["train"]["max_epochs"] = args.epochs
            split = lambda text: [p.strip() for p in text.split(";") if p.strip()]  # noqa: E731
            ablate(args.model, args.data, output_dir=args.output, kind=args.kind, seeds=args.seeds, pair_sets=split(args.pair_sets),
                   no_ulgm_pair_sets=split(args.no_ulgm_for), align_dim=args.align_dim, overrides=overrides,
                   runs_dir=args.runs_dir, command="msakit " + shlex.join(sys.argv[1:] if argv is None else argv))
            print((Path(args.output) / "ablation.md").read_text())
        elif args.command == "robustness":
            from msakit.robustness import robustness

            grid = dict(rates=_floats(args.rates, "--rates"), missing=args.missing, frame_drop=args.frame_drop, noise=args.noise,
                        snrs=_floats(args.snr, "--snr"), word_errors=args.word_errors)
            output = Path(args.output) if args.output else Path(args.run_dir) / "robustness"
            robustness(args.run_dir, args.data, kind=args.kind, split=args.split, grid=grid, corruption_seed=args.seed, output_dir=output,
                       device=args.device, command="msakit " + shlex.join(sys.argv[1:] if argv is None else argv))
            print((output / "robustness.md").read_text())
            print(f"written to {output}/robustness.json, .md, .png")
        elif args.command == "synth":
            path = msakit.make_synthetic(Path(args.output), seed=args.seed, n_train=args.n_train, n_valid=args.n_valid, n_test=args.n_test)
            print(f"synthetic dataset written to {path}")
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"msakit {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
