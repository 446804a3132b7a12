"""gunicorn settings for bench/bare_app.py: every setting of the shipped gunicorn.conf.py except its hooks.

The shipped hooks check the product's files at start and warm up its model in each
worker. The bare app has neither, so its server runs without them. bench/serve.py warns
when the shipped file defines a hook that runs per request (pre_request, post_request).
Workers, threads, worker class, bind (GUNICORN_BIND) and logging stay the same.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import shipped_gunicorn_settings  # noqa: E402

globals().update(shipped_gunicorn_settings())
