"""``msakit evaluate``: metrics of a trained run on a data file."""

from __future__ import annotations

import sys

from msakit.commands._common import add_run_evaluation_arguments


def add_parser(sub, common) -> None:
    p = sub.add_parser("evaluate", parents=[common], help="metrics of a trained run on a data file")
    add_run_evaluation_arguments(p)


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
