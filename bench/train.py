"""Measure the wall time that training takes to reach a test accuracy (default 99.0%).

Default: runs `python -m train` (the shipped recipe) as a subprocess and reads its
per-epoch lines. The model goes to a temporary folder, never to models/, and the process
is stopped after its last epoch, before the ONNX export.

--baseline: runs the original recipe in this process, with the same network class:
  - loss F.cross_entropy(F.softmax(logits, dim=1), labels): softmax before a loss that
    applies log-softmax itself, which is the original's mistake, reproduced on purpose
  - SGD, learning rate 0.01, momentum 0.5, no weight decay, no schedule
  - batches of 64 in file order (no shuffling), no augmentation, 25 epochs
  - train.model.Net with dropout 0.5, the rate of the classic PyTorch MNIST example
  - default (contiguous) memory layout; the shipped recipe uses channels_last
  - in-memory tensor slices as batches, so no DataLoader cost is included
  Unlike the original, accuracy is measured in eval mode (dropout off) with
  train.loop.evaluate, the same function as the shipped recipe.

Both recipes are timed from the start of the first epoch; each epoch's time includes
its test-set evaluation. Results go to bench/results/train.json (train_baseline.json
with --baseline).

Run from the repository root: python -m bench.train --help
"""

if not __package__:
    raise SystemExit("error: run this script from the repository root as: python -m bench.train")

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import REPO_ROOT, format_table, library_versions, machine_info, print_header, write_results

QUICK_LIMIT = 1000
BASELINE = {"epochs": 25, "batch_size": 64, "lr": 0.01, "momentum": 0.5, "dropout": 0.5, "seed": 1}

# Patterns of the lines that train/cli.py and train/loop.py print. A change to those lines
# must be mirrored here, or the run fails with "printed no epoch lines".
TRAINING_LINE = re.compile(r"^training .*\((?P<device>\w+), (?P<threads>\d+) threads\)")
EPOCH_LINE = re.compile(
    r"^epoch\s+(?P<epoch>\d+)/(?P<epochs>\d+)\s+loss (?P<loss>[\d.]+)\s+test accuracy (?P<accuracy>[\d.]+)%"
)
TRAINED_LINE = re.compile(r"^trained \d+ epochs in")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.train",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--baseline", action="store_true", help="run the original recipe instead of the shipped one")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: 1 epoch on the first {QUICK_LIMIT} training and test images"
    )
    parser.add_argument(
        "--epochs", type=int, default=None,
        help=f"epochs (default: the recipe's own, {BASELINE['epochs']} for --baseline; 1 with --quick)",
    )
    parser.add_argument(
        "--limit", type=int, default=None,
        help=f"use only the first N training and N test images (default: all; {QUICK_LIMIT} with --quick)",
    )
    parser.add_argument(
        "--target", type=float, default=99.0, help="test accuracy to reach, in percent (default: %(default)s)"
    )
    parser.add_argument(
        "--stop-at-target", action="store_true",
        help="stop at the first epoch that reaches --target; the final accuracy is then that epoch's",
    )
    parser.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads (default: PyTorch's choice)")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds after which the run is stopped (default: %(default)s)"
    )
    parser.add_argument(
        "--mnist-dir", type=Path, default=None,
        help="folder with the MNIST files (default: $MNIST_DIR, else data/mnist)",
    )
    args = parser.parse_args(argv)

    if args.quick:
        args.epochs = args.epochs or 1
        args.limit = args.limit or QUICK_LIMIT
    for name in ("epochs", "limit", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1, got {value}")
    if not 0 < args.target <= 100:
        parser.error(f"--target must be a percentage above 0 and at most 100, got {args.target}")
    return args


# ---------------------------------------------------------------------------
# Shipped recipe: python -m train as a subprocess
# ---------------------------------------------------------------------------


def shipped_command(args, out_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "train", "--out", str(out_dir / "mnist.onnx")]
    for option, value in (("--epochs", args.epochs), ("--limit", args.limit), ("--threads", args.threads)):
        if value is not None:
            command += [option, str(value)]
    if args.mnist_dir:
        command += ["--mnist-dir", str(args.mnist_dir)]
    return command


def run_shipped(args) -> dict:
    """Run `python -m train`, echo its output, and return the per-epoch times read from its lines."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out_dir:
        command = shipped_command(args, Path(out_dir))
        print("running: " + " ".join(command), flush=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        watchdog = threading.Timer(args.timeout, process.kill)
        watchdog.start()
        try:
            run = read_shipped_output(process, args)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            process.stdout.close()
    if run["started"] is None or not run["history"]:
        raise RuntimeError(
            f"python -m train printed no epoch lines (exit status {process.returncode}); see its output above"
        )
    return {"threads": run["threads"], "history": run["history"]}


def read_shipped_output(process: subprocess.Popen, args) -> dict:
    """Read the child's lines until its last epoch (or the target, with --stop-at-target)."""
    run: dict = {"started": None, "threads": None, "history": []}
    for line in process.stdout:
        now = time.perf_counter()
        line = line.rstrip("\n")
        print(f"  {line}", flush=True)
        if match := TRAINING_LINE.match(line):
            run["started"], run["threads"] = now, int(match["threads"])
        elif (match := EPOCH_LINE.match(line)) and run["started"] is not None:
            accuracy = float(match["accuracy"])
            run["history"].append({"epoch": int(match["epoch"]), "train_loss": float(match["loss"]),
                                   "test_accuracy_percent": accuracy, "elapsed_s": now - run["started"]})
            if args.stop_at_target and accuracy >= args.target:
                break
        elif TRAINED_LINE.match(line):
            break  # training is over; the export that follows is not timed
    return run


# ---------------------------------------------------------------------------
# Original recipe, in this process
# ---------------------------------------------------------------------------


def load_tensors(args):
    """Return train and test images and labels as tensors, limited to --limit images."""
    import numpy as np
    import torch

    from train.data import IDXError, default_data_dir, load_split
    from train.loop import to_tensor

    data_dir = args.mnist_dir or default_data_dir()
    try:
        splits = [load_split(split, data_dir) for split in ("train", "test")]
    except IDXError as exc:
        sys.exit(f"error: {exc}; set MNIST_DIR or pass --mnist-dir")
    tensors = []
    for images, labels in splits:
        images, labels = images[: args.limit], labels[: args.limit]
        tensors += [to_tensor(images), torch.from_numpy(labels.astype(np.int64))]
    return tensors


def baseline_epoch(net, optimizer, images, labels, batch_size: int) -> float:
    """Train one epoch of the original recipe and return the mean training loss."""
    import torch.nn.functional as F

    net.train()
    total_loss = 0.0
    for start in range(0, len(images), batch_size):
        batch_images, batch_labels = images[start : start + batch_size], labels[start : start + batch_size]
        logits = net(batch_images)
        # The original's loss: cross_entropy applies log-softmax to its input, so this
        # takes softmax twice and flattens the gradients. Reproduced on purpose.
        loss = F.cross_entropy(F.softmax(logits, dim=1), batch_labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(batch_images)
    return total_loss / len(images)


def run_baseline(args) -> dict:
    """Train the original recipe and return the per-epoch accuracy and elapsed time."""
    import torch

    from train.loop import evaluate
    from train.model import Net

    if args.threads:
        torch.set_num_threads(args.threads)
    train_images, train_labels, test_images, test_labels = load_tensors(args)
    torch.manual_seed(BASELINE["seed"])
    net = Net(dropout=BASELINE["dropout"])
    optimizer = torch.optim.SGD(net.parameters(), lr=BASELINE["lr"], momentum=BASELINE["momentum"])
    epochs = args.epochs or BASELINE["epochs"]
    print(f"original recipe: {epochs} epochs on {len(train_images):,} images, "
          f"{torch.get_num_threads()} threads, testing on {len(test_images):,}", flush=True)

    history = []
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss = baseline_epoch(net, optimizer, train_images, train_labels, BASELINE["batch_size"])
        accuracy = 100 * evaluate(net, test_images, test_labels)
        history.append({"epoch": epoch, "train_loss": loss, "test_accuracy_percent": accuracy,
                        "elapsed_s": time.perf_counter() - started})
        print(f"  epoch {epoch:2d}/{epochs}  loss {loss:.4f}  test accuracy {accuracy:.2f}%  "
              f"{history[-1]['elapsed_s']:.1f} s", flush=True)
        if args.stop_at_target and accuracy >= args.target:
            break
        if time.perf_counter() - started > args.timeout:
            print(f"  stopped: --timeout {args.timeout} s reached", flush=True)
            break
    return {"threads": torch.get_num_threads(), "history": history}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def summarize_run(history: list[dict], target: float) -> dict:
    """Return the time and epoch at which the target was first reached, and the final and best accuracy."""
    reached = next((epoch for epoch in history if epoch["test_accuracy_percent"] >= target), None)
    return {
        "target_percent": target,
        "time_to_target_s": reached["elapsed_s"] if reached else None,
        "epoch_reaching_target": reached["epoch"] if reached else None,
        "epochs_run": len(history),
        "final_accuracy_percent": history[-1]["test_accuracy_percent"],
        "best_accuracy_percent": max(epoch["test_accuracy_percent"] for epoch in history),
        "training_time_s": history[-1]["elapsed_s"],
    }


def build_table(recipe: str, summary: dict, threads: int) -> str:
    headers = ["recipe", "threads", f"time to {summary['target_percent']:g}%", "epoch", "final accuracy",
               "best accuracy", "epochs", "training time"]
    reached = summary["time_to_target_s"]
    row = [
        recipe,
        str(threads),
        f"{reached:.1f} s" if reached is not None else "not reached",
        str(summary["epoch_reaching_target"] or "-"),
        f"{summary['final_accuracy_percent']:.2f}%",
        f"{summary['best_accuracy_percent']:.2f}%",
        str(summary["epochs_run"]),
        f"{summary['training_time_s']:.1f} s",
    ]
    return format_table(headers, [row])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch  # noqa: F401  (imported here so that library_versions reports it)

    recipe = "original (--baseline)" if args.baseline else "shipped (python -m train)"
    machine = machine_info()
    title = f"Time to {args.target:g}% test accuracy, {recipe} recipe (bench/train.py)"
    print_header(title, machine, library_versions())
    if args.limit:
        print(f"note: only the first {args.limit} training and test images (--limit); accuracy is on those test images")

    try:
        run = run_baseline(args) if args.baseline else run_shipped(args)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = summarize_run(run["history"], args.target)
    print()
    print(build_table(recipe, summary, run["threads"]))
    notes = ["wall time from the start of the first epoch; each epoch includes its test-set evaluation."]
    if args.quick:
        notes.append("--quick smoke run: 1 epoch on a subset, so the accuracy says nothing about the recipe.")
    print()
    for note in notes:
        print(f"note: {note}")

    name = "train_baseline" if args.baseline else "train"
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    path = write_results(name, {
        "quick": args.quick, "recipe": recipe, "machine": machine, "versions": library_versions(),
        "settings": settings, "baseline_recipe": BASELINE if args.baseline else None, "threads": run["threads"],
        **summary, "history": run["history"], "notes": notes,
    })
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
