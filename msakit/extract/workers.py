"""What every extraction worker process does at its start (``msakit extract``, ``predict
--video``, ``msakit serve``).

``exit_with_parent``: a worker ends when the process that started it is gone. A pool's workers
hold both ends of their task queue, so a parent killed outright (SIGKILL, out of memory) would
leave them waiting for work forever, each holding its models in memory.

``exit_reasons``: how a broken process pool's workers ended, in words, for the clip's error.
"""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(interval_s: float = 1.0) -> None:
    """Start a daemon thread that ends this process once its parent has exited (it is then
    adopted by another process, and ``os.getppid()`` changes)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="msakit-exit-with-parent", daemon=True).start()


def exit_reasons(executor, wait_s: float = 2.0) -> str:
    """How the executor's worker processes ended, in words (e.g. 'killed by signal 9 (SIGKILL),
    as the system does when memory runs out'), waiting up to ``wait_s`` for a dead one to be reaped."""
    import signal

    processes = list((getattr(executor, "_processes", None) or {}).values())
    codes: list[int] = []
    deadline = time.monotonic() + wait_s  # the dead process may not have been reaped yet when the pool reports it
    while True:
        codes = [p.exitcode for p in processes if getattr(p, "exitcode", None) not in (None, 0)]
        if codes or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not codes:
        return "it ended without an exit status"
    code = sorted(codes, key=lambda c: c == -signal.SIGTERM)[0]  # the pool ends the others with SIGTERM afterwards
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = ", as the system does when memory runs out" if -code == signal.SIGKILL else ""
        return f"killed by signal {-code} ({name}){why}"
    return f"exit status {code}"


__all__ = ["exit_reasons", "exit_with_parent"]
