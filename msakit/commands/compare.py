"""``msakit compare``: train several models over the same seeds; a table and a figure."""

from __future__ import annotations

from pathlib import Path

from msakit.commands._common import _seeds
from msakit.errors import ConfigError


def _model_data(items: list[str] | None) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--model-data: expected MODEL=PATH, got {item!r}")
        pairs[name.strip()] = path.strip()
    return pairs


def add_parser(sub, common) -> None:
    p = sub.add_parser("compare", parents=[common], help="train several models over the same seeds; write a table (markdown, JSON) and a figure")
    p.add_argument("--models", required=True, help="comma-separated, e.g. self_mm,dma,tfn,lmf,mult")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", default="mosi", choices=["mosi", "mosei", "sims"])
    p.add_argument("--seeds", type=_seeds, default=[1111, 1112, 1113])
    p.add_argument("--output", required=True, help="directory for compare.json/.md/.png (and the runs, unless --runs-dir)")
    p.add_argument("--runs-dir", help="where the runs go; finished seeds there are reused")
    p.add_argument("--epochs", type=int, help="maximum epochs of every run (train.max_epochs)")
    p.add_argument("--text-only", action="store_true", help="also train each model on the text alone (a row per model)")
    p.add_argument("--model-data", action="append", metavar="MODEL=PATH",
                   help="train MODEL on another file of the same samples, e.g. mag_bert=aligned.pkl (MAG-BERT needs word-aligned data)")
    p.add_argument("--set", action="append", metavar="[MODEL:]SECTION.KEY=VALUE",
                   help="override a setting for every model, or for one model with a MODEL: prefix (e.g. tfn:model.post_fusion_dim=32)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: each model and seed a task on a Ray cluster (the runs directory must be shared by its machines)")
    p.add_argument("--address", help="with --engine ray: the Ray cluster to join (HOST:6379, ray://HOST:10001 or auto; default: a local one)")


def run(args, command_line: str) -> int | None:
    from msakit.config import parse_set_options
    from msakit.workflows.compare import compare

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    shared = [item for item in args.set or [] if ":" not in item.split("=", 1)[0]]
    per_model: dict = {}
    for item in args.set or []:
        if item not in shared:
            name, rest = item.split(":", 1)
            per_model.setdefault(name.strip(), []).append(rest)
    overrides = parse_set_options(shared)
    if args.epochs is not None:
        overrides["train"]["max_epochs"] = args.epochs
    if args.quiet:
        overrides["train"]["progress"] = "false"
    compare(models, args.data, output_dir=args.output, kind=args.kind, seeds=args.seeds, overrides=overrides,
            model_overrides={m: parse_set_options(items) for m, items in per_model.items()}, text_only=args.text_only,
            runs_dir=args.runs_dir, command=command_line, model_data=_model_data(args.model_data), engine=args.engine, address=args.address)
    print((Path(args.output) / "compare.md").read_text())
