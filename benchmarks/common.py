"""Helpers shared by the benchmark scripts: machine description and result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores_visible": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": memory_gib,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    """HEAD, with ``+uncommitted`` when tracked files differ from it (the numbers came from a tree
    that is not that commit)."""
    try:
        head = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True, stderr=subprocess.DEVNULL).strip()
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], stderr=subprocess.DEVNULL).returncode != 0
        return head + ("+uncommitted" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def command_line() -> str:
    """How this script was called, as recorded beside its results."""
    return " ".join([Path(sys.executable).name, *sys.argv])


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": command_line(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "commit": git_commit(),
        "machine": machine(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def write_table(name: str, protocol: str, table: str, payload: dict) -> None:
    """``results/<name>.md`` (the protocol, the table, the command) and ``results/<name>.json``."""
    (RESULTS / f"{name}.md").write_text(f"{protocol}.\n\n{table}\nMade with:\n\n    {command_line()}\n")
    write_result(name, {"protocol": protocol, **payload})

