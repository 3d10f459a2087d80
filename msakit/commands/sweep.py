"""``msakit sweep``: search settings with Optuna; retrain the best over seeds."""

from __future__ import annotations

from pathlib import Path

from msakit.commands._common import _seeds, available_models


def add_parser(sub, common) -> None:
    p = sub.add_parser("sweep", parents=[common], help="search settings with Optuna on validation MAE; retrain the best over seeds; table + figures")
    p.add_argument("--model", default="dma", choices=available_models(), metavar="MODEL", help="one of %(choices)s (default %(default)s)")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", default="mosi", choices=["mosi", "mosei", "sims"])
    p.add_argument("--space", help="search space TOML file (default: the model's default space, see msakit/workflows/sweep.py)")
    p.add_argument("--n-trials", type=int, default=20, help="trials in the whole study, shared by all its workers")
    p.add_argument("--output", required=True, help="directory for the trials' runs, study.db, trials.csv/.md, figures, sweep.json")
    p.add_argument("--storage", help="SQLAlchemy URL of the study database, e.g. postgresql://user:pass@host/db (default: sqlite in --output)")
    p.add_argument("--study", help="study name (default <model>-<data>); workers with the same --storage and --study share it")
    p.add_argument("--seeds", type=_seeds, default=[1111, 1112, 1113, 1114, 1115], help="seeds of the final retraining")
    p.add_argument("--no-final", action="store_true", help="only run trials (extra workers); no final retraining")
    p.add_argument("--final-only", action="store_true", help="no new trials: retrain the study's best settings and write the report")
    p.add_argument("--sampler-seed", type=int, help="seed of the TPE sampler")
    p.add_argument("--prune-after", type=int, default=3, help="epochs a trial always runs before the median pruner may stop it")
    p.add_argument("--heartbeat", type=int, default=30, help="seconds between a running trial's heartbeats; a trial silent for 4x this is failed and retried")
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")


def run(args, command_line: str) -> int | None:
    from msakit.config import parse_set_options
    from msakit.workflows.sweep import sweep

    overrides = parse_set_options(args.set)
    if args.epochs is not None:
        overrides["train"]["max_epochs"] = args.epochs
    result = sweep(args.model, args.data, output_dir=args.output, kind=args.kind, space=args.space, n_trials=args.n_trials,
                   storage=args.storage, study_name=args.study, overrides=overrides, seeds=args.seeds, final=not args.no_final,
                   final_only=args.final_only, sampler_seed=args.sampler_seed, heartbeat_interval=args.heartbeat,
                   prune_after=args.prune_after, command=command_line)
    print((Path(args.output) / "trials.md").read_text())
    from msakit.workflows.sweep import rounded

    best = "none (no trial finished)" if result.best_valid_mae is None else f"{result.best_valid_mae:.4f}"
    print(f"best valid MAE {best} with {rounded(result.best_params or {})}; report in {args.output}")
