"""One process of the 2-process training test (tests/test_distributed.py), started by torchrun.

``python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py SPEC.json``.
On ranks other than 0, every file write (open for writing, rename/replace, copy, safetensors
and torch saves) is recorded; the list is written to ``SPEC's out/writes_rank<N>.json`` (outside
the runs) for the test to check that rank 0 alone wrote the runs. Trains, in one process
group, each run of the spec: ``{"name", "model", "run_dir", "overrides", "kill_at_epoch"?}``;
a run with ``kill_at_epoch`` is interrupted at the start of that epoch (as a kill would, after
the previous epoch's checkpoint) and then resumed by a fresh trainer from its directory.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import sys
from pathlib import Path


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    rank = int(os.environ["RANK"])
    out = Path(spec["out"])
    writes: list[str] = []
    real_open = builtins.open
    if rank:
        def spy(function, mode_at=None):
            def wrapped(*args, **kwargs):
                mode = args[mode_at] if mode_at is not None and len(args) > mode_at else kwargs.get("mode", "r")
                if mode_at is None or any(c in str(mode) for c in "wax+"):
                    writes.append(f"{function.__name__}: {args[0] if args else ''}")
                return function(*args, **kwargs)
            return wrapped

        builtins.open = io.open = spy(builtins.open, 1)
        for name in ("replace", "rename", "remove", "unlink"):
            setattr(os, name, spy(getattr(os, name)))
        for name in ("copyfile", "copytree", "rmtree"):
            setattr(shutil, name, spy(getattr(shutil, name)))
        import safetensors.torch
        import torch

        safetensors.torch.save_file = spy(safetensors.torch.save_file)
        torch.save = spy(torch.save)
        with open(out / "probe.txt", "w") as f:  # recorded: the test checks the recorder works
            f.write("rank 1")

    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    for run in spec["runs"]:
        config = resolve_config(run["model"], data_path=spec["data"], overrides=run["overrides"])
        kill = run.get("kill_at_epoch")
        if kill:
            original = Trainer.train_epoch

            def dying(self, epoch, original=original, kill=kill):
                if epoch == kill:
                    raise KeyboardInterrupt("simulated kill")
                return original(self, epoch)

            Trainer.train_epoch = dying
            try:
                Trainer(config, run["run_dir"]).fit()
            except KeyboardInterrupt:
                pass
            Trainer.train_epoch = original
            Trainer(config, run["run_dir"]).fit(resume=True)
        else:
            Trainer(config, run["run_dir"]).fit()
    with real_open(out / f"writes_rank{rank}.json", "w") as f:
        json.dump(writes, f)


if __name__ == "__main__":
    main()
