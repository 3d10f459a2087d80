"""Helpers shared by several commands: argument types, the model names, the process group."""

from __future__ import annotations

import argparse


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected comma-separated integers, got {text!r}") from None


def add_run_evaluation_arguments(p) -> None:
    """The arguments of a command that evaluates a trained run on a data file: the run, the
    data, its kind, the split and the device."""
    p.add_argument("run_dir")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"], help="default: the kind the run was trained on")
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")


def _floats(text: str, option: str) -> list[float]:
    from msakit.errors import ConfigError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated numbers, got {text!r}") from None


class _ModelNames:
    """The registered model names, looked up (importing the models, and with them torch) only
    when argparse checks a ``--model`` value or prints a help: commands that train nothing
    (``msakit extract``) start without torch's 2 s import."""

    def _names(self) -> list[str]:
        from msakit.models import available_models

        return available_models()

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def available_models() -> _ModelNames:
    return _ModelNames()


def world_size() -> int:
    from msakit.training.distributed import world_size as size

    return size()


def is_main_process() -> bool:
    from msakit.training.distributed import is_main_process as main

    return main()
