"""What every extraction worker process does at its start (``msakit extract``, ``predict
--video``, ``msakit serve``).

``exit_with_parent``: a worker ends when the process that started it is gone. A pool's workers
hold both ends of their task queue, so a parent killed outright (SIGKILL, out of memory) would
leave them waiting for work forever, each holding its models in memory.
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


__all__ = ["exit_with_parent"]
