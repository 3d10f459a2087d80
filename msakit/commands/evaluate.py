"""``msakit evaluate``: metrics of a trained run on a data file."""

from __future__ import annotations

import sys


def add_parser(sub, common) -> None:
    p = sub.add_parser("evaluate", parents=[common], help="metrics of a trained run on a data file")
    p.add_argument("run_dir")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"], help="default: the kind the run was trained on")
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")


def run(args, command_line: str) -> int | None:
    import msakit
    from msakit.metrics import format_table

    result = msakit.evaluate(args.run_dir, args.data, kind=args.kind, split=args.split, device=args.device)
    for note in result.get("warnings", []):
        print(f"warning: {note}", file=sys.stderr)
    print(format_table(result["summary"], title=f"{args.split} metrics of {args.run_dir}"))
    if len(result["per_seed"]) > 1:  # the same units as the table above (not the fractions of summary.json)
        from msakit.metrics import format_per_seed

        print()
        print(format_per_seed(result["per_seed"], title="per seed"))
    if result.get("ulgm_labels"):
        from msakit.training.runs import ulgm_label_table

        print(ulgm_label_table(result["ulgm_labels"]["per_seed"]))
