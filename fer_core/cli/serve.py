"""``serve``: the HTTP API for other programs (docs/api.md)."""

from __future__ import annotations

import argparse

from fer_core.cli.common import Parents, positive_int


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API until interrupted."""
    from fer_core.serve.app import ServeConfig, read_api_keys
    from fer_core.serve.server import ServerOptions, serve

    options = ServerOptions(host=args.host, port=args.port, workers=args.workers, engine=args.engine,
                            replicas=args.replicas, address=args.address, batching=not args.no_batching)
    serve(options, ServeConfig(api_keys=read_api_keys(args.api_keys_file)))
    return 0


def add_serve(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("serve", parents=[parents.verbose],
                       help="an HTTP API for other programs (FastAPI; local or Ray Serve)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=8000)
    p.add_argument("--workers", type=positive_int, default=1, help="local engine: uvicorn worker processes")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: analyse in this process (default); ray: Ray Serve replicas with request batching")
    p.add_argument("--replicas", type=positive_int, default=1, help="--engine ray: analyzer replicas (one CPU each)")
    p.add_argument("--address", help="--engine ray: join the Ray cluster there (default: start a local Ray)")
    p.add_argument("--no-batching", action="store_true",
                   help="--engine ray: classify each request's faces alone (no @serve.batch across requests)")
    p.add_argument("--api-keys-file", metavar="FILE",
                   help="one API key per line; requests to /v1 need one (default: $FER_API_KEYS, comma-separated; "
                        "neither: no key needed)")
    # A server's threads write to stderr while it loads a model: TensorFlow's import is never muted there.
    p.set_defaults(func=cmd_serve, uses_tensorflow=False, mutes_tensorflow=False)
