"""Start and stop gunicorn on 127.0.0.1 for the benchmarks, and read its processes from /proc."""

from __future__ import annotations

import contextlib
import os
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO_ROOT

SHIPPED_CONF = REPO_ROOT / "gunicorn.conf.py"
# Settings of the shipped file that the bare server must not take over: the app it loads.
NOT_COPIED = {"wsgi_app", "config"}
# gunicorn hooks that run for every request. The others run at start-up, fork, exit or on signals.
PER_REQUEST_HOOKS = {"pre_request", "post_request"}
STOP_GRACE_SECONDS = 30


def gunicorn_setting_names() -> set[str]:
    from gunicorn.config import KNOWN_SETTINGS

    return {setting.name for setting in KNOWN_SETTINGS}


def shipped_module_values() -> dict:
    """Run the shipped gunicorn.conf.py under this process's environment and return its globals."""
    return runpy.run_path(str(SHIPPED_CONF))


def shipped_gunicorn_settings() -> dict:
    """Return the shipped file's gunicorn settings that are values, leaving out hooks and the app."""
    names = gunicorn_setting_names() - NOT_COPIED
    return {
        name: value
        for name, value in shipped_module_values().items()
        if name in names and not callable(value)
    }


def shipped_gunicorn_hooks() -> list[str]:
    """Return the names of the server hooks that the shipped file defines."""
    names = gunicorn_setting_names()
    return sorted(name for name, value in shipped_module_values().items() if name in names and callable(value))


def effective_server_settings() -> dict:
    """Return the worker class, workers and threads that gunicorn derives from the shipped file.

    NOTE: settings given in GUNICORN_CMD_ARGS or on a command line are not included.
    """
    from gunicorn.config import Config

    config = Config()
    for name, value in shipped_gunicorn_settings().items():
        config.set(name, value)
    return {"worker_class": config.worker_class_str, "workers": config.workers, "threads": config.threads}


def server_environment() -> tuple[dict, list[str]]:
    """Return the environment variables to add for benchmark servers, and a note for each.

    The app stops at start-up without SECRET_KEY (see webapp/settings.py). Servers that a
    benchmark starts on 127.0.0.1 and stops again get a random key when none is set.
    """
    if os.environ.get("SECRET_KEY"):
        return {}, []
    note = "SECRET_KEY was not set, so the benchmark servers ran with a random key."
    return {"SECRET_KEY": secrets.token_hex(32)}, [note]


def gunicorn_executable() -> str:
    """Return the gunicorn script next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "gunicorn"
    if beside.is_file():
        return str(beside)
    found = shutil.which("gunicorn")
    if found is None:
        sys.exit("error: gunicorn not found; install the requirements with: pip install -r requirements.txt")
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A gunicorn master started by a benchmark, with its URL and its log file."""

    name: str
    process: subprocess.Popen
    base_url: str
    log_path: Path
    started: float  # time.perf_counter() just before the process was spawned


@contextlib.contextmanager
def running_gunicorn(name: str, arguments: list[str], log_dir: Path, env: dict | None = None):
    """Start gunicorn with `arguments` on a free 127.0.0.1 port, yield a Server, and always stop it.

    stdout and stderr go to <log_dir>/<name>.log. The process gets its own session, so
    that a stop can kill any worker that outlives the master.
    """
    port = free_port()
    environment = {**os.environ, **(env or {}), "GUNICORN_BIND": f"127.0.0.1:{port}"}
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [gunicorn_executable(), *arguments],
            cwd=REPO_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield Server(name, process, f"http://127.0.0.1:{port}", log_path, started)
        finally:
            stop_server(process)


def stop_server(process: subprocess.Popen) -> None:
    """Stop a gunicorn master with SIGTERM, then SIGKILL its process group if it is still running."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"warning: gunicorn {process.pid} ignored SIGTERM for {STOP_GRACE_SECONDS} s; killing it",
                  file=sys.stderr)
    # The group id is the master's pid (start_new_session), so this reaches only its workers.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(log {path} could not be read: {exc})"


def http_request(url: str, headers: dict | None = None, data: bytes | None = None, timeout: float = 10):
    """Send one request and return (status, headers, body), for error statuses too."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def wait_until_ok(server: Server, path: str, timeout: float, interval: float) -> float:
    """Poll GET `path` until it returns 200 and return time.perf_counter() at that response.

    Raises RuntimeError, with the end of the server's log, if the server exits or the
    timeout in seconds runs out first.
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            status, _, _ = http_request(server.base_url + path, timeout=max(interval, 2.0))
            if status == 200:
                return time.perf_counter()
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name}: gunicorn exited with status {server.process.returncode} before {path} "
                f"returned 200; end of its log:\n{log_tail(server.log_path)}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{server.name}: {path} did not return 200 within {timeout} s; end of the log:\n"
                f"{log_tail(server.log_path)}"
            )
        time.sleep(interval)


def wait_for_digit_sections(server: Server, timeout: float, interval: float = 0.1) -> float:
    """Wait until every worker has logged event=digit_sections_rendered; return time.perf_counter() then.

    Each gunicorn worker renders every digit page's section in a background thread after
    its warm-up, so pages served before then measure cache misses. Raises RuntimeError,
    with the end of the server's log, if the timeout in seconds runs out first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = child_pids(server.process.pid)
        rendered = server.log_path.read_text(errors="replace").count("event=digit_sections_rendered")
        if workers and rendered >= len(workers):
            return time.perf_counter()
        time.sleep(interval)
    raise RuntimeError(
        f"{server.name}: the workers did not all log digit_sections_rendered within {timeout} s; "
        f"end of the log:\n{log_tail(server.log_path)}"
    )


def child_pids(pid: int) -> list[int]:
    """Return the pids of the direct children of `pid` (gunicorn's workers), read from /proc."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process exited after the directory was listed
            continue
        # Fields after the command name, which is in brackets and may contain spaces:
        # state, then the parent pid.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            children.append(int(entry.name))
    return sorted(children)


def memory_kib(pid: int) -> dict:
    """Return VmRSS (from /proc/<pid>/status) and Pss (from smaps_rollup, None if unreadable) in KiB."""
    rss = None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    pss = None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return {"rss_kib": rss, "pss_kib": pss}


def cpu_seconds(pids: list[int]) -> float:
    """Return the user plus system CPU seconds used so far by the given processes."""
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
            total += int(fields[11]) + int(fields[12])
    return total / ticks_per_second
