"""``msakit serve``: a page and an HTTP API scoring clips with a trained run (msakit/workflows/serve;
needs msakit[serve] and msakit[video])."""

from __future__ import annotations

from msakit.errors import ConfigError


def add_parser(sub, common) -> None:
    p = sub.add_parser("serve", parents=[common], help="a page and an HTTP API scoring clips with a trained run (needs msakit[serve])")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs --token)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--token", help="bearer token the page and API ask for (default: $MSAKIT_SERVE_TOKEN, else none)")
    p.add_argument("--max-mb", type=float, default=50.0, help="largest upload per request, in MB (413 beyond it)")
    p.add_argument("--workers", type=int, default=1, help="extraction processes")
    p.add_argument("--queue", type=int, default=8, help="clips that may wait for a worker (503 with Retry-After beyond)")
    p.add_argument("--max-clips", type=int, default=16, help="clips per request")
    p.add_argument("--device", default="cpu", help="where the model runs: cpu (default), auto, cuda")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"], help="default: the kind the run was trained on")


def run(args, command_line: str) -> int | None:
    import os

    from msakit.workflows.serve import serve

    token = args.token if args.token is not None else os.environ.get("MSAKIT_SERVE_TOKEN")
    if token is not None and not token.strip():
        where = "--token" if args.token is not None else "MSAKIT_SERVE_TOKEN"
        raise ConfigError(f"{where}: empty; give a secret string (the page and API then ask for it), or leave it out on 127.0.0.1")
    serve(args.run_dir, host=args.host, port=args.port, token=token,
          max_mb=args.max_mb, workers=args.workers, queue=args.queue, max_clips=args.max_clips, device=args.device, kind=args.kind)
