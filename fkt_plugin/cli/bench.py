"""``fkt-bench``: augmentation and training throughput, each comparison interleaved in one run,
and host-device synchronisations per training step."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from fkt_plugin.cli.errors import user_errors_exit


def _device(name: str | None) -> str:
    import torch

    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``fkt-bench``."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="fkt-bench", description="Measure throughput; every comparison runs its arms in "
        "turn within each round and reports medians, so ratios hold on a noisy machine.")
    commands = parser.add_subparsers(dest="command", required=True)
    aug = commands.add_parser(
        "aug", help="images/s and ops per batch of the SimCLR and BYOL view pipelines: the "
        "fused engine, kornia's containers and torchvision",
        description="Images/s and aten ops per batch of the SimCLR (symmetric) and BYOL "
                    "(asymmetric) pipelines of the STL-10 recipes: the fused engine and kornia's "
                    "containers on a whole batch on the device against torchvision one image at "
                    "a time on the CPU (one loader worker's work).")
    aug.add_argument("--sizes", type=int, nargs="+", default=[32, 96, 224], help="image px")
    aug.add_argument("--batch-size", type=int, default=256)
    aug.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up)")
    aug.add_argument("--workers", type=int, help="loader workers for the ideal-scaling column "
                     "(default: CPU count)")
    train = commands.add_parser(
        "train", help="images/s of simclr and fkt_joint training steps vs a plain PyTorch loop",
        description="Images/s of full training steps (data, views, forward, backward, "
                    "optimiser) of the CIFAR-10 recipes on synthetic 3-channel images, through "
                    "fkt-plugin and through a hand-written loop doing the same computation, "
                    "with each augmentation backend.")
    train.add_argument("--methods", nargs="+", default=["simclr", "fkt_joint"],
                       choices=["simclr", "fkt_joint"])
    train.add_argument("--backends", nargs="+", default=["fused", "kornia", "torchvision"],
                       choices=["fused", "fused-host", "fused-compiled", "kornia", "torchvision"],
                       help="how views are made: a data.augmentation_backend, or the fused "
                       "engine with host images (fused-host) or compiled with the backbone as "
                       "CUDA graphs (fused-compiled)")
    train.add_argument("--backbone", help="default: resnet18 on a GPU, small_cnn on a CPU")
    train.add_argument("--size", type=int, default=32, help="image px")
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--steps", type=int, default=10, help="timed steps per arm and round")
    train.add_argument("--warmup", type=int, default=3, help="untimed steps per arm and round")
    train.add_argument("--rounds", type=int, default=3)
    train.add_argument("--workers", type=int,
                       help="loader workers of the torchvision backend (default: CPU count)")
    train.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    for sub in (aug, train):
        sub.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    data = commands.add_parser(
        "data", help="peak memory and first-batch latency of the datamodule on a memory map",
        description="Writes a uint8 array of a dataset's size to a file (default: STL-10's "
                    "unlabelled pool, 100,000 x 3 x 96 x 96 = 2.8 GB), opens it memory-mapped "
                    "and, in a fresh process per measurement, builds the datamodule on it and "
                    "draws the first batch: with the splits as index views (how fkt-train "
                    "runs) and with every split copied into memory (for comparison).")
    data.add_argument("--images", type=int, default=100_000)
    data.add_argument("--size", type=int, default=96, help="image px")
    data.add_argument("--batch-size", type=int, default=256)
    data.add_argument("--rounds", type=int, default=3)
    data.add_argument("--tmp-dir", type=Path, help="where the array file is written (default: "
                      "the system's temporary folder; it needs the array's size free)")
    clustering = commands.add_parser(
        "cluster", help="seconds of k-means: faiss (fkt-cluster's) vs scikit-learn's KMeans",
        description="k-means of synthetic features at a teacher's scale (default 100,000 x "
                    "512, k = 1,000) by fkt-plugin's faiss k-means and by scikit-learn's "
                    "KMeans, same initialisation and iterations, interleaved.")
    clustering.add_argument("--images", type=int, default=100_000)
    clustering.add_argument("--dim", type=int, default=512)
    clustering.add_argument("--k", type=int, default=1000)
    clustering.add_argument("--iterations", type=int, default=20)
    clustering.add_argument("--rounds", type=int, default=1)
    clustering.add_argument("--separation", type=float, default=1.0,
                            help="spread of the synthetic cluster centres (noise has std 1)")
    mvmr = commands.add_parser(
        "mvmr", help="an MV-MR training step against a SimCLR step, and the MV-MR step's parts",
        description="Milliseconds of an MV-MR and a SimCLR training step of the CIFAR-10 "
                    "recipes on the same backbone, batch and images, and of the parts of the "
                    "MV-MR step timed alone (views, each representation, the distance "
                    "correlations), interleaved.")
    mvmr.add_argument("--backbone", help="default: resnet18 on a GPU, small_cnn on a CPU")
    mvmr.add_argument("--size", type=int, default=32, help="image px")
    mvmr.add_argument("--batch-size", type=int, default=256)
    mvmr.add_argument("--rounds", type=int, default=10, help="timed rounds (after 2 warm-up)")
    mvmr.add_argument("--mvmr-proj-dim", type=int,
                      help="width of every layer of MV-MR's head (default: the recipe's)")
    mvmr.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    guided = commands.add_parser(
        "guided", help="seconds per epoch of G-SimCLR's guided batches vs uniform batches",
        description="Seconds to draw one epoch of guided batches (the order and its pair "
                    "statistics) and one epoch of uniform batches, on one CPU thread, "
                    "interleaved.")
    guided.add_argument("--images", type=int, default=1_000_000)
    guided.add_argument("--k", type=int, default=256, help="clusters")
    guided.add_argument("--batch-size", type=int, default=256)
    guided.add_argument("--rounds", type=int, default=5)
    syncs = commands.add_parser(
        "syncs", help="host-device synchronisations per training step of each method (GPU)",
        description="Counts the host-device synchronisations (.item(), device-to-host copies, "
                    "boolean indexing) in training steps of each method's CIFAR-10 recipe on a "
                    "CUDA device, run as fkt-train runs it, and names the line of code making "
                    "each (torch.cuda.set_sync_debug_mode). Needs a GPU.")
    # The CIFAR-10 recipes that train a registered backbone without extra files (gsimclr needs
    # a cluster file; dae trains its own encoder).
    sync_methods = ["simclr", "byol", "fkt_joint", "supervised", "mvmr"]
    syncs.add_argument("--methods", nargs="+", default=sync_methods, choices=sync_methods)
    syncs.add_argument("--backbone", default="resnet18")
    syncs.add_argument("--size", type=int, default=32, help="image px")
    syncs.add_argument("--batch-size", type=int, default=256)
    syncs.add_argument("--steps", type=int, default=40, help="counted steps per method")
    syncs.add_argument("--warmup", type=int, default=5, help="uncounted steps first")
    syncs.add_argument("--precision", default="bf16-mixed", choices=["32-true", "bf16-mixed"])
    syncs.add_argument("--device", help="a CUDA device (default: cuda when available)")
    ops = commands.add_parser(
        "ops", help="aten ops per batch of every shipped recipe's views (no GPU needed)",
        description="Counts the aten ops one batch of every shipped pretrain recipe's views "
                    "dispatches: the fused engine on a fake CUDA batch at each --batch-sizes "
                    "(a host read of a device value fails there), kornia's containers on the "
                    "CPU. Each op but a view is a kernel launch on a GPU.")
    ops.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    gpu = commands.add_parser(
        "gpu", help="the GPU measurements of the view engine in one run (aug, train, syncs)",
        description="Runs, one after the other on one CUDA device, the measurements the view "
                    "engine is judged by, each writing its table into --out-dir: views alone at "
                    "32/96/224 px (fused, kornia, torchvision per image); synchronisations per "
                    "step; SimCLR and fkt_joint ResNet-18 bf16 training at 32 and 96 px, fused "
                    "views (device-resident images, and at 32 px host images too) against "
                    "torchvision views from one loader worker per core; last, SimCLR with the "
                    "step compiled as CUDA graphs. Sized to finish within 8 minutes on an "
                    "H100 (not yet timed there); each table is written as soon as it is done.")
    gpu.add_argument("--out-dir", type=Path, default=Path("docs/results/performance"),
                     help="folder of the tables (default: docs/results/performance)")
    gpu.add_argument("--device", help="a CUDA device (default: cuda when available)")
    for sub in (aug, train, data, clustering, mvmr, guided, syncs, ops):
        sub.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    command = shlex.join(["fkt-bench", *argv])
    with user_errors_exit():
        if args.command == "cluster":
            from fkt_plugin.benchmarks.clustering import run as run_clustering

            run_clustering(args.images, args.dim, args.k, args.iterations, args.rounds,
                           args.separation, args.out, command)
            return
        if args.command == "guided":
            from fkt_plugin.benchmarks.sampling import run as run_sampling

            run_sampling(args.images, args.k, args.batch_size, args.rounds, args.out, command)
            return
        if args.command == "ops":
            from fkt_plugin.benchmarks.ops import run as run_ops

            run_ops(args.batch_sizes, args.out, command)
            return
        if args.command == "data":
            from fkt_plugin.benchmarks.data import run as run_data

            run_data(args.images, args.size, args.batch_size, args.rounds, args.tmp_dir,
                     args.out, command)
            return
        device = _device(args.device)
        if args.command == "gpu":
            from fkt_plugin.benchmarks.gpu import run as run_gpu

            run_gpu(device, args.out_dir, command)
            return
        if args.command == "syncs":
            from fkt_plugin.benchmarks.syncs import run as run_syncs

            run_syncs(args.methods, args.backbone, args.size, args.batch_size, args.steps,
                      args.warmup, args.precision, device, args.out, command)
            return
        backbone = getattr(args, "backbone", None) or (
            "resnet18" if device.startswith("cuda") else "small_cnn")
        if args.command == "mvmr":
            from fkt_plugin.benchmarks.mvmr import run as run_mvmr

            run_mvmr(backbone, args.size, args.batch_size, args.rounds, device, args.out,
                     command, args.mvmr_proj_dim)
            return
        if args.command == "aug":
            from fkt_plugin.benchmarks.augmentation import run

            run(args.sizes, args.batch_size, args.rounds, device, args.workers, args.out,
                command)
        else:
            from fkt_plugin.benchmarks.training import run as run_training

            run_training(args.methods, args.backends, backbone, args.size, args.batch_size,
                         args.steps, args.warmup, args.rounds, args.workers, args.precision,
                         device, args.out, command)


if __name__ == "__main__":
    main()
