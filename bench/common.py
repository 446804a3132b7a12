"""Helpers shared by the benchmark scripts: machine facts, summaries, tables and result files."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"

# Distributions whose versions every script reports. torch is added where the script imported it.
LIBRARIES = ("flask", "gunicorn", "onnxruntime", "numpy")


def cpu_model() -> str:
    """Return the first "model name" of /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """Return the facts that a reader needs to compare numbers across machines."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        load = [round(value, 2) for value in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "load_average_1_5_15_min": load,
    }


def library_versions() -> dict:
    """Return the versions of Python, the serving libraries and torch if this process imported it."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    if "torch" in sys.modules:
        versions["torch"] = sys.modules["torch"].__version__
    return versions


def print_header(title: str, machine: dict, versions: dict) -> None:
    """Print the benchmark's title, the machine and the library versions."""
    print(f"# {title}")
    print(
        f"machine: {machine['cpu_count']} CPUs ({machine['usable_cpus']} usable), {machine['cpu_model']}, "
        f"load average {machine['load_average_1_5_15_min']}"
    )
    print("versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))


def summarize(values: list[float]) -> dict:
    """Return the median, minimum and maximum of repeated measurements, with the values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": list(values)}


def format_spread(summary: dict, digits: int) -> str:
    """Format a summary as "median (min-max)", or as the value alone when there is one."""
    median = f"{summary['median']:.{digits}f}"
    if len(summary["values"]) < 2:
        return median
    return f"{median} ({summary['min']:.{digits}f}-{summary['max']:.{digits}f})"


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """Format rows as a Markdown table with aligned columns, ready to paste into docs/benchmarks.md."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)) + " |"

    separator = "| " + " | ".join("-" * width for width in widths) + " |"
    return "\n".join([line(headers), separator, *(line(row) for row in rows)])


def write_results(name: str, results: dict) -> Path:
    """Write results to bench/results/<name>.json, with the time of writing, and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {"benchmark": name, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **results}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path

