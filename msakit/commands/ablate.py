"""``msakit ablate``: train a model with several alignment pair sets (and without ULGM)."""

from __future__ import annotations

from pathlib import Path

from msakit.commands._common import _seeds, available_models


def add_parser(sub, common) -> None:
    p = sub.add_parser("ablate", parents=[common], help="train a model with several alignment pair sets (and without ULGM); write a table and a plot")
    p.add_argument("--model", default="dma", choices=available_models(), metavar="MODEL", help="one of %(choices)s (default %(default)s)")
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


def run(args, command_line: str) -> int | None:
    from msakit.config import parse_set_options
    from msakit.workflows.ablation import ablate

    overrides = parse_set_options(args.set)
    overrides["train"].setdefault("progress", "false")
    if args.epochs is not None:
        overrides["train"]["max_epochs"] = args.epochs
    split = lambda text: [p.strip() for p in text.split(";") if p.strip()]  # noqa: E731
    ablate(args.model, args.data, output_dir=args.output, kind=args.kind, seeds=args.seeds, pair_sets=split(args.pair_sets),
           no_ulgm_pair_sets=split(args.no_ulgm_for), align_dim=args.align_dim, overrides=overrides,
           runs_dir=args.runs_dir, command=command_line)
    print((Path(args.output) / "ablation.md").read_text())
