"""Time ONNX Runtime session options on the model: intra-op threads, graph optimisation, spinning.

For every combination, one session runs test image 0 and a batch of test images (default:
all 10,000). The table shows the wall time per call and the CPU time per call of this
process, because a spinning thread pool shortens the wall time by burning CPU time that
another gunicorn worker could have used. Spinning only exists with more than one
intra-op thread, so the 1-thread rows have none.

Each round times every combination in turn, so drift of a shared machine affects them
all alike. The table shows the median of the rounds. Results go to
bench/results/ort_options.json.

Run from the repository root: python -m bench.ort_options --help
"""

if not __package__:
    raise SystemExit("error: run this script from the repository root as: python -m bench.ort_options")

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.common import REPO_ROOT, format_table, library_versions, machine_info, print_header, write_results
from train.data import IDXError, default_data_dir, load_split
from webapp.testset import to_model_input

LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ort_options", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 100 single calls, 1,000 images")
    parser.add_argument("--rounds", type=int, default=None, help="rounds over all combinations (default: 5)")
    parser.add_argument("--single-calls", type=int, default=None, help="single-image calls per round (default: 1000)")
    parser.add_argument("--batch-size", type=int, default=None, help="images in the batch (default: 10000)")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=None,
        help="intra-op thread counts to try (default: 1 and the number of usable CPUs)",
    )
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "mnist.onnx", help="ONNX model file")
    parser.add_argument("--mnist-dir", type=Path, default=None, help="folder with the MNIST test files")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.single_calls is None:
        args.single_calls = 100 if args.quick else 1000
    if args.batch_size is None:
        args.batch_size = 1000 if args.quick else 10_000
    if args.threads is None:
        args.threads = sorted({1, len(os.sched_getaffinity(0))})
    for name in ("rounds", "single_calls", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if min(args.threads) < 1:
        parser.error(f"--threads must all be at least 1, got {args.threads}")
    return args


def make_session(model: Path, threads: int, level: str, spinning: bool | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = LEVELS[level]
    if spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


def time_calls(run, calls: int) -> tuple[float, float]:
    """Return the wall and CPU seconds per call of `calls` calls of run()."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        run()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        images, _ = load_split("test", args.mnist_dir or default_data_dir())
    except IDXError as exc:
        sys.exit(f"error: {exc}; set MNIST_DIR or pass --mnist-dir")
    batch = np.ascontiguousarray(to_model_input(images[: args.batch_size]))
    single = np.ascontiguousarray(batch[:1])

    combinations = []
    for threads, level in itertools.product(args.threads, LEVELS):
        for spinning in ((None,) if threads == 1 else (True, False)):
            session = make_session(args.model, threads, level, spinning)
            input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
            combinations.append({
                "threads": threads, "level": level, "spinning": spinning,
                "single": lambda s=session, i=input_name, o=output_name: s.run([o], {i: single}),
                "batch": lambda s=session, i=input_name, o=output_name: s.run([o], {i: batch}),
                "samples": {"single_wall": [], "single_cpu": [], "batch_wall": [], "batch_cpu": []},
            })

    reference = combinations[0]["batch"]()[0]
    for combination in combinations:
        difference = float(np.abs(combination["batch"]()[0] - reference).max())
        if difference > 1e-5:
            sys.exit(f"error: {combination['level']} with {combination['threads']} threads differs by {difference:.1e}")
        time_calls(combination["single"], 50)  # warm-up

    machine, versions = machine_info(), library_versions()
    print_header("ONNX Runtime session options (bench/ort_options.py)", machine, versions)
    print(f"model: {args.model}; {args.rounds} rounds of {args.single_calls} single-image calls and "
          f"1 call on {args.batch_size:,} images; median of the rounds", flush=True)

    for _ in range(args.rounds):
        for combination in combinations:
            samples = combination["samples"]
            wall, cpu = time_calls(combination["single"], args.single_calls)
            samples["single_wall"].append(wall)
            samples["single_cpu"].append(cpu)
            wall, cpu = time_calls(combination["batch"], 1)
            samples["batch_wall"].append(wall)
            samples["batch_cpu"].append(cpu)

    rows, results = [], []
    for combination in combinations:
        medians = {name: statistics.median(values) for name, values in combination["samples"].items()}
        spinning = {None: "-", True: "on", False: "off"}[combination["spinning"]]
        rows.append([
            str(combination["threads"]), combination["level"], spinning,
            f"{medians['single_wall'] * 1e6:.1f}", f"{medians['single_cpu'] * 1e6:.1f}",
            f"{medians['batch_wall'] * 1e3:.1f}", f"{medians['batch_cpu'] * 1e3:.1f}",
        ])
        results.append({key: combination[key] for key in ("threads", "level", "spinning")}
                       | {"samples": combination["samples"], "medians": medians})

    print()
    print(format_table(
        ["threads", "graph optimisation", "spinning", "1 image µs", "1 image CPU µs",
         f"{args.batch_size:,} images ms", f"{args.batch_size:,} images CPU ms"],
        rows,
    ))
    path = write_results("ort_options", {"quick": args.quick, "machine": machine, "versions": versions,
                                         "settings": {**vars(args), "model": str(args.model),
                                                      "mnist_dir": str(args.mnist_dir)},
                                         "combinations": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
