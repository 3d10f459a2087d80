"""Command line: ``msakit train | evaluate | predict | compare | sweep | robustness | extract | serve | synth``, each over a library function.

The commands themselves are one module each in ``msakit/commands/``; this module holds the top
parser, the dispatch and the error boundary (``main``)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from msakit.commands import COMMANDS
from msakit.commands._common import _floats, _ModelNames, _seeds, available_models, is_main_process, world_size  # noqa: F401  (re-exported)
from msakit.commands.compare import _model_data  # noqa: F401  (re-exported)
from msakit.commands.extract import _extract_setting  # noqa: F401  (re-exported)
from msakit.commands.predict import _shown, _video_table  # noqa: F401  (re-exported)
from msakit.commands.train import _launch_torchrun  # noqa: F401  (re-exported)


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line, like every other error (exit 2), pointing at
    ``--help`` instead of printing the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="msakit", description="Multimodal sentiment analysis: train, evaluate, predict.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    for command in COMMANDS.values():
        command.add_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure the user can cause ends in one line on stderr naming the
    file or setting and what to do, with exit code 2; Ctrl-C ends with 130 (and, for training,
    how to resume); anything else is a bug in msakit: one line (exit 70), and ``--debug``
    shows its traceback."""
    args = build_parser().parse_args(argv)
    from msakit.errors import MsakitError

    command_line = "msakit " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        status = _run(args, command_line)
    except KeyboardInterrupt:
        print(f"{_speaker(args)}: interrupted{_resume_hint(args, command_line)}", file=sys.stderr)
        return 130
    except MsakitError as error:
        if args.debug:
            raise
        print(f"{_speaker(args)}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # the user's files: missing, unreadable, a directory, disk full
        if args.debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"{_speaker(args)}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the boundary: a bug, reported as one
        if args.debug:
            raise
        print(
            f"{_speaker(args)}: internal error (a bug in msakit, please report it): {type(error).__name__}: "
            f"{_one_line(error)}. Rerun with --debug for the traceback.",
            file=sys.stderr,
        )
        return 70
    return status or 0


def _speaker(args) -> str:
    """``msakit <command>``; under torchrun, ranks other than 0 say which they are (their lines
    would otherwise repeat rank 0's without telling whose they are)."""
    import os

    rank = os.environ.get("RANK", "0")
    return f"msakit {args.command}" + (f" [rank {rank}]" if rank not in ("", "0") and os.environ.get("WORLD_SIZE", "1") != "1" else "")


def _one_line(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(text.split()) or type(error).__name__


def _resume_hint(args, command_line: str) -> str:
    if args.command != "train" or not getattr(args, "run_dir", None):
        return ""
    run_dir = Path(args.run_dir)
    from msakit.training.checkpoint import has_progress

    if not any(has_progress(seed_dir) for seed_dir in run_dir.glob("seed_*")):
        return f"; no epoch had finished, so nothing in {run_dir} is worth keeping: start again"
    again = command_line if "--resume" in command_line.split() else f"{command_line} --resume"
    if "--run-dir" not in command_line.split():
        again += f" --run-dir {shlex.quote(str(run_dir))}"
    return f"; the finished epochs are saved in {run_dir}. Resume with: {again}"


def _run(args, command_line: str) -> int | None:
    """Carry out the command; an int is the exit status where it is not 0 (e.g. clips not scored)."""
    return COMMANDS[args.command].run(args, command_line)


if __name__ == "__main__":
    sys.exit(main())
