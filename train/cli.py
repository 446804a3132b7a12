"""Command line for training: parse options, load MNIST, train, export."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from train.data import IDXError, default_data_dir, load_split
from train.export import ExportError, export_and_check
from train.loop import TrainConfig, to_tensor, train
from train.model import Net, count_parameters

DEFAULTS = TrainConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train",
        description="Train the MNIST CNN on CPU or GPU and export it to ONNX with a model card.",
    )

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument(
        "--epochs", type=int, default=DEFAULTS.epochs,
        help="number of passes over the training set (default: %(default)s)",
    )
    optimisation.add_argument(
        "--batch-size", type=int, default=DEFAULTS.batch_size, help="training images per step (default: %(default)s)"
    )
    optimisation.add_argument(
        "--lr", type=float, default=DEFAULTS.lr,
        help="peak learning rate of the one-cycle schedule, or the rate itself with --schedule constant "
        "(default: %(default)s)",
    )
    optimisation.add_argument(
        "--weight-decay", type=float, default=DEFAULTS.weight_decay, help="AdamW weight decay (default: %(default)s)"
    )
    optimisation.add_argument(
        "--schedule", choices=("onecycle", "constant"), default=DEFAULTS.schedule,
        help="learning-rate schedule (default: %(default)s)",
    )
    optimisation.add_argument(
        "--warmup-fraction", type=float, default=DEFAULTS.warmup_fraction,
        help="fraction of the one-cycle steps over which the learning rate rises to --lr (default: %(default)s)",
    )
    optimisation.add_argument(
        "--label-smoothing", type=float, default=DEFAULTS.label_smoothing,
        help="label smoothing of the cross entropy (default: %(default)s)",
    )
    optimisation.add_argument(
        "--seed", type=int, default=DEFAULTS.seed,
        help="seed for weights, shuffling and augmentation (default: %(default)s)",
    )

    augmentation = parser.add_argument_group("augmentation")
    augmentation.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, default=DEFAULTS.augment,
        help="apply a random rotation, shift and scale to every training batch (default: on)",
    )
    augmentation.add_argument(
        "--max-rotation", type=float, default=DEFAULTS.max_rotation,
        help="maximum rotation in degrees (default: %(default)s)",
    )
    augmentation.add_argument(
        "--max-shift", type=float, default=DEFAULTS.max_shift, help="maximum shift in pixels (default: %(default)s)"
    )
    augmentation.add_argument(
        "--max-scale", type=float, default=DEFAULTS.max_scale,
        help="maximum scale change as a fraction, 0.1 scales by 0.9-1.1 (default: %(default)s)",
    )

    run = parser.add_argument_group("data, device and output")
    run.add_argument(
        "--limit", type=int, default=None,
        help="use only the first N training and N test images, for a quick smoke run (default: all)",
    )
    run.add_argument(
        "--device", choices=("cpu", "cuda"), default=DEFAULTS.device, help="device to train on (default: %(default)s)"
    )
    run.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads (default: PyTorch's choice, one per core)")
    run.add_argument(
        "--mnist-dir", "--data-dir", dest="data_dir", metavar="DIR", type=Path, default=None,
        help="folder with the MNIST IDX files (default: $MNIST_DIR, else data/mnist in the checkout)",
    )
    run.add_argument(
        "--out", type=Path, default=Path("models/mnist.onnx"),
        help="ONNX file to write, with its model card next to it as .json (default: %(default)s)",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        warmup_fraction=args.warmup_fraction,
        label_smoothing=args.label_smoothing,
        augment=args.augment,
        max_rotation=args.max_rotation,
        max_shift=args.max_shift,
        max_scale=args.max_scale,
        seed=args.seed,
        limit=args.limit,
        device=args.device,
    )


def validate(config: TrainConfig) -> str | None:
    """Return an error message for the first invalid setting, or None."""
    if config.epochs < 1:
        return f"--epochs must be at least 1, got {config.epochs}"
    if config.batch_size < 1:
        return f"--batch-size must be at least 1, got {config.batch_size}"
    if config.lr <= 0:
        return f"--lr must be positive, got {config.lr}"
    if not 0 < config.warmup_fraction < 1:
        return f"--warmup-fraction must be in (0, 1), got {config.warmup_fraction}"
    if not 0 <= config.label_smoothing < 1:
        return f"--label-smoothing must be in [0, 1), got {config.label_smoothing}"
    if config.limit is not None and config.limit < 1:
        return f"--limit must be at least 1, got {config.limit}"
    if not 0 <= config.max_scale < 1:
        return f"--max-scale must be in [0, 1), got {config.max_scale}"
    if config.device == "cuda" and not torch.cuda.is_available():
        return "--device cuda was requested but PyTorch sees no CUDA device; use --device cpu"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    error = validate(config)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)

    data_dir = args.data_dir or default_data_dir()
    try:
        train_images, train_labels = load_split("train", data_dir)
        test_images, test_labels = load_split("test", data_dir)
    except IDXError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if config.limit:
        train_images, train_labels = train_images[: config.limit], train_labels[: config.limit]
        test_images, test_labels = test_images[: config.limit], test_labels[: config.limit]

    torch.manual_seed(config.seed)
    device = config.device
    # channels_last lets oneDNN pick faster convolution kernels for these small layers:
    # a training step took about half the time of the default layout on a 2-core CPU.
    model = Net(dropout=config.dropout).to(device, memory_format=torch.channels_last)

    def print_header() -> None:
        print(
            f"training {count_parameters(model):,} parameters on {len(train_images):,} images "
            f"({device}, {torch.get_num_threads()} threads), testing on {len(test_images):,}"
        )

    started = time.perf_counter()
    # train() prints the header right before the first epoch, after the pixel conversion
    # and the optimizer setup. bench/train.py starts its clock at this line, so it times
    # the epochs only.
    result = train(
        model,
        to_tensor(train_images, device),
        torch.from_numpy(train_labels.astype(np.int64)).to(device),
        to_tensor(test_images, device),
        torch.from_numpy(test_labels.astype(np.int64)).to(device),
        config,
        on_start=print_header,
    )
    print(f"trained {config.epochs} epochs in {time.perf_counter() - started:.1f} s")

    try:
        export_and_check(
            model.to(memory_format=torch.contiguous_format),
            args.out,
            to_tensor(test_images).numpy(),
            test_labels,
            config.to_dict(),
            [asdict(epoch) for epoch in result.history],
            result.seconds,
        )
    except ExportError as exc:
        print(f"error: {exc}; {args.out} was left unchanged", file=sys.stderr)
        return 1
    return 0
