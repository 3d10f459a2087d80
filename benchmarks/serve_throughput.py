"""Throughput and latency of ``msakit serve`` on 3-second clips (the GRID clips of shared/data/media).

For each worker count, a real server (``msakit serve RUN --port 0 --workers W``) is started and
fed ``--requests`` single-clip requests by ``2 W`` client threads (so a worker never waits for
work); clips per minute, latency median and p95, and the peak resident memory of the server
with its worker processes (sampled from /proc every 0.1 s) are recorded. Two request kinds:
``api`` (``POST /api/predict``, the JSON of ``predict --video``) and ``page`` (the page's
request: ``?timeline=true``, which for a text-only run also extracts audio and face for the
timeline). The load average at the start is recorded: on a shared machine the numbers move.

    .venv/bin/python benchmarks/serve_throughput.py --run runs/text --workers 1,2 --requests 24
"""

from __future__ import annotations

import argparse
import re
import select
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, SHARED_DATA, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total / 1024


def start(run: str, workers: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "msakit.cli", "serve", run, "--port", "0", "--workers", str(workers),
                                "--queue", "64"], cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if select.select([process.stderr], [], [], 1.0)[0]:
            found = re.search(r" at (http://127\.0\.0\.1:\d+/)", process.stderr.readline())
            if found:
                threading.Thread(target=lambda: process.stderr.read(), daemon=True).start()  # keep the pipe drained
                return process, found.group(1)
    process.kill()
    raise SystemExit("msakit serve did not start")


def measure(url: str, process: subprocess.Popen, clips: list[Path], requests: int, threads: int, timeline: bool) -> dict:
    import httpx

    peak, running = [0.0], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], tree_rss_mb(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    data = [c.read_bytes() for c in clips]
    params = {"timeline": "true"} if timeline else {}

    def one(i: int) -> tuple[float, bool]:
        start = time.perf_counter()
        with httpx.Client(timeout=600) as client:
            response = client.post(url + "api/predict", params=params, files={"file": (clips[i % len(clips)].name, data[i % len(clips)])})
        ok = response.status_code == 200 and len(response.json()["predictions"]) == 1
        return time.perf_counter() - start, ok

    for i in range(threads):  # warm: the first clip of each worker loads its models
        one(i)
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    running[0] = False
    sampler.join()
    latencies = sorted(r[0] for r in results)
    return {"requests": requests, "client_threads": threads, "ok": sum(r[1] for r in results), "wall_s": round(wall, 2),
            "clips_per_minute": round(60 * requests / wall, 1), "latency_median_s": round(statistics.median(latencies), 2),
            "latency_p95_s": round(latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))], 2),
            "peak_rss_mb": round(peak[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a trained run (e.g. Self-MM trained on ../shared/data/mosi_text)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--kinds", default="api,page")
    args = parser.parse_args()
    clips = sorted((SHARED_DATA / "media" / "grid").glob("*.mpg"))
    if not clips:
        raise SystemExit(f"no clips in {SHARED_DATA / 'media' / 'grid'}")
    load = Path("/proc/loadavg").read_text().split()[:3]
    rows = []
    for workers in [int(w) for w in args.workers.split(",")]:
        process, url = start(args.run, workers)
        try:
            idle = tree_rss_mb(process.pid)
            for kind in args.kinds.split(","):
                row = {"workers": workers, "kind": kind, "idle_rss_mb": round(idle, 1),
                       **measure(url, process, clips, args.requests, 2 * workers, timeline=kind == "page")}
                print(row, flush=True)
                rows.append(row)
        finally:
            process.terminate()
            process.wait(timeout=30)
    lines = ["| workers | request | clips/min | latency median (s) | p95 (s) | peak server RSS (MB) | ok |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['kind']} | {r['clips_per_minute']} | {r['latency_median_s']} | {r['latency_p95_s']} | {r['peak_rss_mb']} | "
              f"{r['ok']}/{r['requests']} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    write_result("serve_throughput", {"clips": [c.name for c in clips], "clip_seconds": 3.0, "run": args.run,
                                      "load_average_at_start": load, "rows": rows,
                                      "note": "2 CPU cores shared with other jobs: numbers are noisy; see load_average_at_start"})
    (RESULTS / "serve_throughput.md").write_text(f"{table}\n\nload average at start: {' '.join(load)}\n")


if __name__ == "__main__":
    main()
