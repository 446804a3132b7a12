"""WSGI entry point: gunicorn wsgi:app"""

import sys

from webapp import StartupError, create_app

try:
    app = create_app()
except StartupError as exc:
    print(f"error: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(1) from None

# Flask turns debug mode on when FLASK_DEBUG is set in the environment. A served app
# never runs in debug mode, whatever FLASK_DEBUG is set to.
app.debug = False
