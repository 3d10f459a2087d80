"""The command line's commands, one module each (``msakit/commands/<name>.py``), in the order
``msakit --help`` lists them. Each module has ``add_parser(sub, common)`` (its subparser and
options) and ``run(args, command_line) -> int | None`` (the command; an int is the exit status
where it is not 0). A new command is a new module here and its entry in ``COMMANDS``."""

from __future__ import annotations

from msakit.commands import ablate, compare, evaluate, extract, predict, robustness, serve, sweep, synth, train

COMMANDS = {
    "train": train,
    "evaluate": evaluate,
    "predict": predict,
    "ablate": ablate,
    "compare": compare,
    "sweep": sweep,
    "extract": extract,
    "robustness": robustness,
    "serve": serve,
    "synth": synth,
}
