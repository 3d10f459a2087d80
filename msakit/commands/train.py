"""``msakit train``: train a model, one run per seed (``msakit train --nproc N``: through torchrun)."""

from __future__ import annotations

import shlex
import sys

from msakit.commands._common import _seeds, available_models, is_main_process, world_size
from msakit.errors import ConfigError


def add_parser(sub, common) -> None:
    p = sub.add_parser("train", parents=[common], help="train a model, one run per seed, and print test metrics")
    p.add_argument("--model", default="dma", choices=available_models(), metavar="MODEL", help="one of %(choices)s (default %(default)s)")
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
    p.add_argument("--compare-text-only", action="store_true", help="also train the same model on text alone (in RUN_DIR/text_only) and print both side by side")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train one run over N processes on this machine (one per GPU, or gloo on CPU): launches this command "
                        "with torchrun (torch.distributed.run --standalone); see docs/guide/distributed.md for several machines")


def _launch_torchrun(args, command_line: str) -> int:
    """``msakit train --nproc N ...``: the same command, without ``--nproc``, in N processes on
    this machine through torchrun (``torch.distributed.run --standalone``); its exit status."""
    import os
    import subprocess

    if args.nproc < 1:
        raise ConfigError(f"--nproc {args.nproc}: give the number of processes, 1 or more (one per GPU on a GPU machine)")
    if world_size() > 1:
        raise ConfigError("--nproc: this process is already one of a torchrun group; drop --nproc (torchrun set the processes)")
    argv = shlex.split(command_line)[1:]
    rest, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            rest.append(item)
    if not args.run_dir:  # chosen once here, so every process and the printed hints name one folder
        import msakit

        rest += ["--run-dir", str(msakit.api.default_run_dir(args.model, args.data))]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}", "-m", "msakit.cli", *rest]
    return subprocess.call(command, env=env)


def run(args, command_line: str) -> int | None:
    import msakit
    from msakit.config import parse_set_options

    if args.nproc is not None:
        return _launch_torchrun(args, command_line)
    overrides = parse_set_options(args.set)
    if args.modalities:
        overrides["data"]["modalities"] = args.modalities
    if args.device:
        overrides["train"]["device"] = args.device
    if args.epochs is not None:
        overrides["train"]["max_epochs"] = args.epochs
    if args.quiet:
        overrides["train"]["progress"] = "false"
    if args.resume and not args.run_dir:
        raise ConfigError("--resume needs --run-dir (the run to continue)")
    if not args.run_dir:  # chosen here so an interrupted run can say where it is
        args.run_dir = str(msakit.api.default_run_dir(args.model, args.data))
        if world_size() > 1:  # under torchrun: rank 0's choice, for every process
            from msakit.training.distributed import context
            from msakit.training.trainer import resolve_device

            args.run_dir = context(resolve_device(overrides["train"].get("device", "auto")).type).from_main(args.run_dir)
    show = print if is_main_process() else (lambda *a, **k: None)  # under torchrun, rank 0 alone prints
    if args.compare_text_only:
        from msakit.api import compare_text_only, side_by_side

        result, text = compare_text_only(args.model, args.data, kind=args.kind, seeds=args.seeds, run_dir=args.run_dir,
                                         overrides=overrides, resume=args.resume)
        show(side_by_side(result, text))
    else:
        result = msakit.train(args.model, args.data, kind=args.kind, seeds=args.seeds, run_dir=args.run_dir, overrides=overrides,
                              resume=args.resume)
        show(result.table())
        from msakit.workflows.text_only import side_by_side, text_stages

        text = text_stages(result)  # model.fusion=text_first (or auto_text_stage=own): its own text-only runs, at no cost
        if text is not None:
            show()
            show(side_by_side(result, text))
    show(f"run written to {result.run_dir}")
