"""The baseline: a bare Flask app that parses the JSON body and answers ``{"cards": []}``.

``python -m benchmarks.bare_app --host H --port P`` serves it through
``cds_service.serve.run_server`` with ``app_uri`` set to this module, so it runs under exactly
the gunicorn settings of ``ixazomib-cds serve`` (deploy/gunicorn.conf.py: workers, gthread
threads, keep-alive, JSON access log, preload). It reads no token and touches no database: the
difference to the service is the service's own work.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from flask import Flask, Response, jsonify, request

APP_URI = "benchmarks.bare_app:app"

app = Flask(__name__)


@app.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    json.loads(request.get_data(cache=False))
    return jsonify({"cards": []})


@app.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


def serve_baseline(
    module: str,
    app_uri: str,
    description: str | None,
    port: int,
    argv: Sequence[str] | None,
    check_settings: Callable[[], object] | None = None,
) -> int:
    """``python -m <module> --host H --port P``: a baseline app under the service's own
    gunicorn settings (``run_server``), so the two differ only in the work per request.

    ``check_settings`` reads the app's settings before gunicorn starts: its ValueError is a
    usage error (exit 2, the message), not a traceback from every worker."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the docstring's lists
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    if check_settings is not None:
        try:
            check_settings()
        except ValueError as error:
            parser.error(str(error))
    from cds_service.serve import run_server

    run_server(args.host, args.port, args.workers, app_uri=app_uri)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return serve_baseline("benchmarks.bare_app", APP_URI, __doc__, 8081, argv)


if __name__ == "__main__":
    sys.exit(main())
