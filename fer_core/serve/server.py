"""Running the API: uvicorn on the local engine, or Ray Serve (``fer serve`` calls :func:`serve`)."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass

from fer_core.serve.app import API_KEYS_ENV, ServeConfig, create_app, read_api_keys
from fer_core.settings import Budgets


@dataclass(frozen=True)
class ServerOptions:
    """Where and how the API runs (the budgets and keys are the :class:`ServeConfig`)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  # uvicorn worker processes (local engine)
    engine: str = "local"  # or "ray"
    replicas: int = 1  # ray: analyzer replicas
    address: str | None = None  # ray: a running cluster (default: an embedded local Ray)
    batching: bool = True  # ray: classify the faces of concurrent requests together


def app_from_env():
    """The app of one uvicorn worker on the local engine: budgets from ``FER_<BUDGET>``, keys from
    ``$FER_API_KEYS`` (what :func:`serve` hands its workers)."""
    from fer_core.serve.engines import LocalEngine

    return create_app(LocalEngine(), ServeConfig(Budgets.from_env(), read_api_keys()))


def serve(options: ServerOptions, config: ServeConfig) -> None:
    """Serve until interrupted."""
    if options.engine == "ray":
        return serve_on_ray(options, config)
    import uvicorn

    os.environ[API_KEYS_ENV] = ",".join(sorted(config.api_keys))  # the workers' keys, whatever their source
    uvicorn.run("fer_core.serve.server:app_from_env", factory=True, host=options.host, port=options.port,
                workers=options.workers, log_level="info")


def serve_on_ray(options: ServerOptions, config: ServeConfig) -> None:
    from fer_core.serve.ray_engine import start_ray_server, stop_ray_server

    started = start_ray_server(config, options.host, options.port, options.replicas, options.address,
                               options.batching)
    print(f"serving on http://{options.host}:{options.port} (Ray Serve, {options.replicas} replica(s)); "
          "Ctrl-C stops", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_ray_server(started)
