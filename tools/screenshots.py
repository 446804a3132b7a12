"""Take the README's screenshots with headless Chromium: python tools/screenshots.py

Starts gunicorn on a free 127.0.0.1 port with the committed model, opens the digit page
and the explorer, writes docs/screenshot-digit.png and docs/screenshot-explorer.png,
and stops the server.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SHOTS = (
    ("/digits/8", "screenshot-digit.png"),
    ("/explore?outcome=wrong&sort=margin&per_page=40", "screenshot-explorer.png"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"error: gunicorn exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"error: {url} did not answer within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs", help="folder for the PNG files (default: docs/)")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The pages shown need no session, so a random key serves when none is set.
    env = {"SECRET_KEY": secrets.token_hex(32), **os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    # The server's errors go to this process's stderr, so a failed start shows its cause.
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app"], cwd=REPO_ROOT, env=env,
                              stdout=subprocess.DEVNULL)
    try:
        wait_until_up(base + "/digits/0", server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            for path, name in SHOTS:
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(args.out / name), full_page=True)
                print(f"wrote {args.out / name}")
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
