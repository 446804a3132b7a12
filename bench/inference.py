"""Time the app's inference call against bare ONNX Runtime and PyTorch eager on the same input.

Cases, for one test image and for a batch of test images (default: all 10,000):
  app ORT     webapp.inference.get_model(settings).predict(x), as the views call it
  bare ORT    onnxruntime.InferenceSession.run with the app session's options
  torch eager train.model.Net with the ONNX file's weights, then softmax, at PyTorch's
              default thread count and at 1 thread
The ONNX Runtime cases run at each intra-op thread count of --ort-threads (default: 1,
the app's setting, and PyTorch's default), so every PyTorch case has an app case with
the same number of threads to compare with.

Each round times every case in turn, so drift of a shared machine affects all cases
alike. Results go to bench/results/inference.json.

Run from the repository root: python -m bench.inference --help
"""

if not __package__:
    raise SystemExit("error: run this script from the repository root as: python -m bench.inference")

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnxruntime as ort

from bench.common import REPO_ROOT, format_spread, format_table, library_versions, machine_info, print_header
from bench.common import summarize, write_results
from train.data import IDXError, default_data_dir, load_split
from webapp.inference import ModelError, SessionSettings, get_model
from webapp.testset import to_model_input

FULL_DEFAULTS = {"rounds": 7, "single_calls": 1000, "batch_rounds": 5}
QUICK_DEFAULTS = {"rounds": 3, "single_calls": 100, "batch_rounds": 2}
SINGLE_WARMUP_CALLS = 50
# PyTorch and ONNX Runtime order floating-point sums differently, so their outputs differ by
# rounding. train/export.py uses the same bound.
MAX_ABS_DIFF = 1e-4


@dataclass
class Case:
    """One timed call: an engine on one input, with the PyTorch threads to set before each round."""

    engine: str
    input: str  # "single" or "batch"
    images: int
    call: Callable[[], object]
    threads: int
    torch_threads: int | None = None  # None: the case does not use PyTorch


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inference",
        description=__doc__.split("\n\n")[0],
    )
    quick, full = QUICK_DEFAULTS, FULL_DEFAULTS
    parser.add_argument(
        "--quick", action="store_true",
        help=f"short smoke run: {quick['rounds']} rounds of {quick['single_calls']} single-image calls and "
        f"{quick['batch_rounds']} batch rounds, unless those options are given",
    )
    parser.add_argument(
        "--rounds", type=int, default=None,
        help=f"timed rounds of single-image calls per case (default: {full['rounds']})",
    )
    parser.add_argument(
        "--single-calls", type=int, default=None, help=f"single-image calls per round (default: {full['single_calls']})"
    )
    parser.add_argument(
        "--batch-rounds", type=int, default=None,
        help=f"timed batch calls per case, one per round (default: {full['batch_rounds']})",
    )
    parser.add_argument(
        "--batch-size", type=int, default=10_000, help="test images in the batch, at most 10,000 (default: %(default)s)"
    )
    parser.add_argument(
        "--ort-threads", type=int, nargs="+", default=None,
        help="intra-op thread counts of the app's and the bare ONNX Runtime sessions "
        "(default: 1 and PyTorch's default thread count)",
    )
    parser.add_argument(
        "--model", type=Path, default=REPO_ROOT / "models" / "mnist.onnx",
        help="ONNX model to time (default: models/mnist.onnx)",
    )
    parser.add_argument(
        "--mnist-dir", type=Path, default=None,
        help="folder with the MNIST test files (default: $MNIST_DIR, else data/mnist)",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch eager cases")
    args = parser.parse_args(argv)

    defaults = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("rounds", "single_calls", "batch_rounds", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.ort_threads is None:
        args.ort_threads = [1, default_torch_threads()]
    if min(args.ort_threads) < 1:
        parser.error(f"--ort-threads must all be at least 1, got {args.ort_threads}")
    args.ort_threads = list(dict.fromkeys(args.ort_threads))
    return args


def default_torch_threads() -> int:
    """Return PyTorch's default intra-op thread count, or the usable CPUs without torch."""
    try:
        import torch
    except ImportError:
        return len(os.sched_getaffinity(0))
    return torch.get_num_threads()


def load_inputs(mnist_dir: Path, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return test image 0 as [1, 1, 28, 28] and the first `batch_size` test images, float32 in [0, 1]."""
    try:
        images, _ = load_split("test", mnist_dir)
    except IDXError as exc:
        sys.exit(f"error: {exc}; set MNIST_DIR or pass --mnist-dir")
    if batch_size > len(images):
        sys.exit(f"error: --batch-size {batch_size} is larger than the {len(images)} test images")
    batch = np.ascontiguousarray(to_model_input(images[:batch_size]))
    return np.ascontiguousarray(batch[:1]), batch


def bare_session(app_session: ort.InferenceSession, model_path: Path) -> ort.InferenceSession:
    """Create a second session for the same file with the app session's options and providers."""
    app_options = app_session.get_session_options()
    options = ort.SessionOptions()
    options.intra_op_num_threads = app_options.intra_op_num_threads
    options.inter_op_num_threads = app_options.inter_op_num_threads
    options.graph_optimization_level = app_options.graph_optimization_level
    options.execution_mode = app_options.execution_mode
    return ort.InferenceSession(str(model_path), sess_options=options, providers=app_session.get_providers())


def onnx_cases(args, single: np.ndarray, batch: np.ndarray) -> tuple[list[Case], dict]:
    """Build the app and bare ONNX Runtime cases per thread count, checking that both return the same output."""
    cases = []
    differences = {}
    for threads in args.ort_threads:
        settings = SessionSettings(model_path=str(args.model), intra_op_threads=threads)
        model = get_model(settings)
        session = bare_session(model.session, args.model)
        input_name, output_name = model.input_name, model.output_name

        app_output = model.predict(batch)
        bare_output = session.run([output_name], {input_name: batch})[0]
        difference = float(np.abs(app_output - bare_output).max())
        if difference > 1e-6:
            raise RuntimeError(
                f"the app and the bare session differ by {difference:.2e} on the batch with {threads} threads; "
                "expected the same"
            )
        differences[threads] = difference

        for name, images in (("single", single), ("batch", batch)):
            cases.append(Case("app ORT", name, len(images), lambda x=images, s=settings: get_model(s).predict(x), threads))
            cases.append(Case("bare ORT", name, len(images),
                              lambda x=images, s=session, i=input_name, o=output_name: s.run([o], {i: x}), threads))
    return cases, {"app_vs_bare_max_abs_diff": max(differences.values()), "ort_threads": args.ort_threads}


def torch_net_from_onnx(model_path: Path):
    """Return train.model.Net in eval mode with the ONNX file's initializers as its parameters.

    The exporter names each initializer after the wrapped module's state_dict entry
    ("model.conv1.weight" for Net's "conv1.weight"). Raises ValueError if a name or shape differs.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    from train.model import Net

    net = Net().eval()
    expected = net.state_dict()
    weights = {}
    for initializer in onnx.load(str(model_path)).graph.initializer:
        name = initializer.name.removeprefix("model.")
        if name in expected:
            weights[name] = torch.from_numpy(numpy_helper.to_array(initializer).copy())
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise ValueError(f"{model_path} has no initializers for {missing}")
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(
                f"{model_path}: {name} has shape {list(tensor.shape)}, Net expects {list(expected[name].shape)}"
            )
    net.load_state_dict(weights)
    return net


def torch_cases(args, single: np.ndarray, batch: np.ndarray, reference: np.ndarray) -> tuple[list[Case], dict]:
    """Build the PyTorch eager cases at default and 1 thread, after checking them against ONNX Runtime."""
    import torch
    from torch.nn import functional as F

    default_threads = torch.get_num_threads()
    try:
        net = torch_net_from_onnx(args.model)
        weights = "copied from the ONNX file"
    except (ImportError, ValueError) as exc:
        # A fresh network of the same architecture does the same arithmetic, so it takes the same time.
        from train.model import Net

        net = Net().eval()
        weights = f"freshly initialised, same architecture ({exc})"

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return F.softmax(net(x), dim=1)

    check: dict = {"torch_weights": weights, "torch_default_threads": default_threads}
    if weights == "copied from the ONNX file":
        difference = float(np.abs(probabilities(torch.from_numpy(batch)).numpy() - reference).max())
        if difference > MAX_ABS_DIFF:
            raise RuntimeError(f"PyTorch differs from ONNX Runtime by {difference:.2e} (limit {MAX_ABS_DIFF:.0e})")
        check["torch_vs_ort_max_abs_diff"] = difference

    cases = []
    for threads in dict.fromkeys((default_threads, 1)):
        for name, images in (("single", single), ("batch", batch)):
            tensor = torch.from_numpy(images)
            cases.append(Case("torch eager", name, len(images), lambda x=tensor: probabilities(x), threads, threads))
    return cases, check


def add_torch_cases(args, single: np.ndarray, batch: np.ndarray, cases: list[Case], checks: dict) -> str:
    """Append the PyTorch eager cases to `cases` and their checks to `checks`, and return a note."""
    if args.no_torch:
        return "PyTorch eager cases left out (--no-torch)."
    try:
        import torch  # noqa: F401
    except ImportError:
        return "PyTorch eager cases left out: torch is not installed (pip install -r requirements.txt)."

    reference = get_model(SessionSettings(str(args.model), args.ort_threads[0])).predict(batch)
    try:
        extra, torch_checks = torch_cases(args, single, batch, reference)
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")
    cases += extra
    checks.update(torch_checks)
    return f"PyTorch weights: {torch_checks['torch_weights']}."


def time_cases(cases: list[Case], rounds: int, calls: int, warmup_calls: int) -> dict[int, list[float]]:
    """Time the cases and return, per case index, the mean nanoseconds per call in each round.

    Each round visits every case in turn.
    """
    torch = sys.modules.get("torch")  # imported by torch_cases whenever a case has torch_threads
    for case in cases:
        if case.torch_threads:
            torch.set_num_threads(case.torch_threads)
        for _ in range(warmup_calls):
            case.call()

    per_call: dict[int, list[float]] = {index: [] for index in range(len(cases))}
    for _ in range(rounds):
        for index, case in enumerate(cases):
            if case.torch_threads:
                torch.set_num_threads(case.torch_threads)
            start = time.perf_counter_ns()
            for _ in range(calls):
                case.call()
            per_call[index].append((time.perf_counter_ns() - start) / calls)
    return per_call


def summarize_cases(cases: list[Case], per_call_ns: dict[int, list[float]]) -> list[dict]:
    """Return each case's time per call and throughput, with ratios to the sessions with the same threads.

    A ratio is None where no ONNX Runtime case has the row's thread count.
    """
    rows = [
        {
            "engine": case.engine,
            "input": case.input,
            "images": case.images,
            "threads": case.threads,
            "ns_per_call": summarize(per_call_ns[index]),
        }
        for index, case in enumerate(cases)
    ]
    reference = {(row["engine"], row["input"], row["threads"]): row["ns_per_call"]["median"] for row in rows}
    for row in rows:
        median = row["ns_per_call"]["median"]
        row["images_per_second"] = row["images"] / (median / 1e9)
        for engine, key in (("bare ORT", "time_over_bare_ort"), ("app ORT", "time_over_app_ort")):
            same_threads = reference.get((engine, row["input"], row["threads"]))
            row[key] = median / same_threads if same_threads else None
    return rows


def format_time(summary_ns: dict, input_kind: str) -> str:
    """Format a time per call in µs for one image and in ms for a batch."""
    scale, unit = (1e3, "µs") if input_kind == "single" else (1e6, "ms")
    return format_spread(summarize([value / scale for value in summary_ns["values"]]), 1) + f" {unit}"


def build_table(rows: list[dict]) -> str:
    headers = ["engine", "input", "threads", "time per call", "images/s", "÷ bare ORT, same threads",
               "÷ app ORT, same threads"]
    table_rows = [
        [
            row["engine"],
            f"{row['images']:,} image{'s' if row['images'] > 1 else ''}",
            str(row["threads"]),
            format_time(row["ns_per_call"], row["input"]),
            f"{row['images_per_second']:,.0f}",
            format_ratio(row["time_over_bare_ort"]),
            format_ratio(row["time_over_app_ort"]),
        ]
        for row in sorted(rows, key=lambda row: (row["input"] != "single", row["threads"]))
    ]
    return format_table(headers, table_rows)


def format_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def named_ratios(rows: list[dict]) -> dict:
    """Return the ratios a reader asks for first, each "time of the first ÷ time of the second"."""
    ratios = {}
    for row in rows:
        if row["engine"] == "app ORT":
            ratios[f"app_over_bare_ort_{row['input']}_{row['threads']}_threads"] = row["time_over_bare_ort"]
        if row["engine"] == "torch eager" and row["input"] == "batch" and row["time_over_app_ort"]:
            ratios[f"torch_eager_batch_over_app_{row['threads']}_threads"] = row["time_over_app_ort"]
    return ratios


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    single, batch = load_inputs(args.mnist_dir or default_data_dir(), args.batch_size)
    try:
        cases, checks = onnx_cases(args, single, batch)
    except (ModelError, RuntimeError) as exc:
        sys.exit(f"error: {exc}")
    notes = [add_torch_cases(args, single, batch, cases, checks)]

    machine, versions = machine_info(), library_versions()
    print_header("Inference time: app vs bare ONNX Runtime vs PyTorch eager (bench/inference.py)", machine, versions)
    print(f"model: {args.model}; ONNX Runtime intra-op threads {', '.join(map(str, args.ort_threads))}; "
          f"PyTorch default threads {checks.get('torch_default_threads', 'n/a')}")
    print(f"timing: {args.rounds} rounds x {args.single_calls} calls for one image, "
          f"{args.batch_rounds} rounds x 1 call for the batch; median (min-max) of the rounds' mean time per call")

    single_cases = [case for case in cases if case.input == "single"]
    batch_cases = [case for case in cases if case.input == "batch"]
    single_ns = time_cases(single_cases, args.rounds, args.single_calls, SINGLE_WARMUP_CALLS)
    batch_ns = time_cases(batch_cases, args.batch_rounds, 1, 1)
    rows = summarize_cases(single_cases, single_ns) + summarize_cases(batch_cases, batch_ns)

    print()
    print(build_table(rows))
    print()
    if args.quick:
        notes.append("--quick smoke run: too few rounds for conclusions.")
    for note in notes:
        print(f"note: {note}")
    path = write_results("inference", {
        "quick": args.quick, "machine": machine, "versions": versions,
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
        "checks": checks, "cases": rows, "ratios": named_ratios(rows), "notes": notes,
    })
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
