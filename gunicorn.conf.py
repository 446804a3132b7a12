"""gunicorn settings, read automatically by `gunicorn wsgi:app` from the working directory.

Each worker is a separate process with its own ONNX Runtime session, created after the
fork. Environment variables override the defaults below.
"""

import os
import sys

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
accesslog = "-"
errorlog = "-"


def on_starting(server):
    """Check settings and files in the master, so a bad deployment stops with one clear line."""
    # NOTE: only webapp.settings is imported here. Importing onnxruntime in the master
    # made every forked worker hang at exit until graceful_timeout (30 s) ran out
    # (onnxruntime 1.32, gunicorn 27.0.1).
    from webapp.settings import StartupError, load_settings

    try:
        load_settings()
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
