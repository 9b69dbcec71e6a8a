"""Command line: ``python -m pydeepclust <command>``.

Commands:
  fit     train a clustering model on a data set; writes metrics.json, the
          checkpoint and the model's pictures to --out
  info    version, torch, how the native extension was built, the active
          backend and the devices (CPU threads, CUDA GPUs), as JSON
  bench   a quick timing of the fused ops against their pure-torch references
          (the full suite is ``make bench``, built on pytest-benchmark)

Each model module provides three hooks used by ``fit``:
``add_cli_arguments(parser)``, ``from_cli(args, dataset) -> estimator`` and
``cli_outputs(model, X, dataset, out_dir) -> {name: path}`` (its pictures).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import time

import numpy as np
import torch

import pydeepclust.ops as ops


def _median_ms(fn, repeats: int, device: torch.device) -> float:
    def run():
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()

    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _bench_cases(n: int, device: torch.device):
    """(name, callable) pairs; each callable runs one op forward+backward."""
    for k in (3, 10, 50):
        codes = ops.simplex_codes(k, device=device)
        E = torch.randn(n, ops.code_width(k), device=device, requires_grad=True)

        def step(E=E, codes=codes):
            dist, _ = ops.cosine_simplex_assign(E, codes, check_finite=False)
            torch.autograd.grad(dist.sum(), E)

        yield f"cosine_simplex_assign fwd+bwd n={n} k={k}", step


# model name -> module with the CLI hooks (imported lazily: --help stays fast)
MODELS = {
    "genksc": "pydeepclust.models.genksc",
    "acedec": "pydeepclust.models.acedec",
    "dcn": "pydeepclust.models.acedec",
    "ae-kmeans": "pydeepclust.models.baselines",
    "kmeans": "pydeepclust.models.baselines",
    "subkmeans": "pydeepclust.models.subkmeans",
    "rsm": "pydeepclust.models.rsm",
    "ksc": "pydeepclust.models.ksc",
    "spectral": "pydeepclust.models.baselines",
}


def model_input(dataset, arch: str = "auto") -> np.ndarray:
    """X as the model should see it: (n, H, W) images for image sets (so conv nets can
    be chosen), (n, d) otherwise."""
    return dataset.images() if dataset.image_shape is not None else dataset.X


def cmd_fit(args) -> int:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank loads the data and trains its share
    of each global batch over a process group set up here (NCCL on CUDA, gloo on the CPU);
    rank 0 alone writes the checkpoint, metrics and pictures and prints."""
    from pydeepclust import distributed as pdist

    group = pdist.init_from_env(args.device)
    try:
        return _fit_and_report(args)
    finally:
        if group:
            torch.distributed.destroy_process_group()


def _fit_and_report(args) -> int:
    from pydeepclust import distributed as pdist
    from pydeepclust.data import load_dataset
    from pydeepclust.metrics import cluster_report

    module = importlib.import_module(MODELS[args.model])
    data = dict(path=args.data_path, classes=args.classes, random_state=args.data_seed)
    if args.test and ":" in args.data:
        raise ValueError(f"--test trains on the train split and reports the test split; "
                         f"--data {args.data!r} names a split already (drop one of them)")
    train = load_dataset(args.data, split="train" if args.test else "all", **data)
    if args.k is None:
        args.k = train.n_classes
    elif args.k < 2:
        raise ValueError(f"--k must be >= 2 (clusters), got {args.k}")
    model = module.from_cli(args, train)
    if "precision" in model.get_params():
        model.set_params(precision=args.precision)
    elif args.precision != "fp32":
        raise ValueError(f"--precision {args.precision}: {args.model} has no networks to run in "
                         "lower precision")
    if not pdist.is_main_process() and "verbose" in model.get_params():
        model.set_params(verbose=False)  # one progress bar, rank 0's
    X = model_input(train)
    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "model.pt")
    if "checkpoint_path" in model.get_params():  # trained over epochs: save along the way
        model.set_params(checkpoint_path=checkpoint, checkpoint_every=args.checkpoint_every)
    elif args.resume:
        raise ValueError(f"--resume: {args.model} is not trained over epochs (no checkpoints "
                         "to resume from)")
    if pdist.process_group_active() and pdist.is_main_process():
        print(f"{args.model}: {torch.distributed.get_world_size()} ranks "
              f"({torch.distributed.get_backend()}); --batch-size is the global batch")
    start = time.perf_counter()
    model.fit(X, resume=args.resume)
    wall = time.perf_counter() - start
    if not pdist.is_main_process():
        return 0
    results = {"model": args.model, "data": train.name, "n_samples": len(train),
               "seed": args.seed, "fit_seconds": round(wall, 2),
               "train": cluster_report(train.y, model.labels_)}
    if args.test:
        test = load_dataset(args.data, split="test", **data)
        results["test"] = cluster_report(test.y, model.predict(model_input(test)))
        results["test_data"] = test.name
    results["params"] = {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                         for k, v in model.get_params().items()}
    if model.get_params().get("checkpoint_path") != checkpoint:  # else saved by fit at its end
        model.save(checkpoint)
    results["files"] = {"checkpoint": checkpoint}
    _write_metrics(results, args.out)  # before the pictures: a failing plot loses no result
    for split in ("train", "test"):
        if split in results:
            r = results[split]
            print(f"{args.model} on {results.get(split + '_data', train.name)}: "
                  f"NMI {r['nmi']:.4f}  ARI {r['ari']:.4f}  ACC {r['acc']:.4f}")
    pictures = {} if args.no_pictures else module.cli_outputs(model, X, train, args.out)
    if pictures:
        results["files"].update(pictures)
        _write_metrics(results, args.out)
    print(f"fit took {wall:.1f} s; metrics, checkpoint and pictures in {args.out}/")
    for name, path in pictures.items():
        print(f"  {name}: {path}")
    return 0


def _write_metrics(results: dict, out_dir: str) -> None:
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)


def cmd_reproduce(args) -> int:
    from pydeepclust import experiments

    if args.list or args.table is None:
        print("\n\n".join(experiments.describe(t) for t in experiments.TABLES.values()))
        return 0
    table = experiments.TABLES[args.table]
    out = args.out or os.path.join("runs", f"{table.name}.jsonl")
    if args.report:
        png = args.png or os.path.splitext(out)[0] + ".png"
        print(experiments.report(table, out, png=png if png != "none" else None))
        return 0
    rows = experiments.select_rows(table, args.rows)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        experiments.run_table(table, rows, args.seeds, out, device=args.device,
                              autoencoder_dir=args.autoencoders, data_path=args.data_path,
                              pictures=args.pictures, verbose=not args.quiet)
    except RuntimeError as failures:  # the other runs finished and are in the file
        if os.path.exists(out):
            print(experiments.report(table, out))
        print(f"error: {failures}")
        return 1
    if os.path.exists(out):
        print(experiments.report(table, out))
    return 0


def info() -> dict:
    """Version, torch, how the extension was built, the backend and the devices torch sees."""
    import platform

    import pydeepclust

    build = ops.build_info()
    if "parallel_backend" in build:  # torch's multi-line report, one line per entry
        build["parallel_backend"] = [line.strip() for line in
                                     build["parallel_backend"].splitlines() if line.strip()]
    cuda = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            cuda.append({"index": index, "name": props.name,
                         "capability": f"{props.major}.{props.minor}",
                         "memory_gib": round(props.total_memory / 2**30, 1)})
    return {
        "pydeepclust": pydeepclust.__version__,
        "location": os.path.dirname(pydeepclust.__file__),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "backend": ops.backend(),
        "build": build,
        "devices": {"cpu": {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads()},
                    "cuda": cuda},
    }


def cmd_info(args) -> int:
    print(json.dumps(info(), indent=2))
    return 0


def cmd_bench(args) -> int:
    device = torch.device(args.device)
    impls = (["extension"] if ops.extension_available() else []) + ["reference"]
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"median of {args.repeats} runs (ms)")
    print(f"| case | {' | '.join(impls)} |" + (" speed-up |" if len(impls) == 2 else ""))
    print("|---" * (len(impls) + 1 + (len(impls) == 2)) + "|")
    for name, step in _bench_cases(args.n, device):
        times = {}
        for impl in impls:
            with ops.use_backend(impl):
                times[impl] = _median_ms(step, args.repeats, device)
        row = f"| {name} | " + " | ".join(f"{times[i]:.2f}" for i in impls) + " |"
        if len(impls) == 2:
            row += f" {times['reference'] / times['extension']:.1f}x |"
        print(row)
    return 0


def _dataset_name(value: str) -> str:
    from pydeepclust.data import parse_dataset_name

    try:
        parse_dataset_name(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("load_dataset: "))
    return value


def _class_list(value: str) -> list[int]:
    try:
        return [int(c) for c in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integer labels separated by commas, e.g. "
                                         f"0,1,2; got {value!r}")


def _add_common_fit_arguments(p: argparse.ArgumentParser) -> None:
    from pydeepclust.data import DATASETS

    p.add_argument("--data", default="digits012", type=_dataset_name, metavar="NAME[:SPLIT]",
                   help=f"data set, one of {', '.join(sorted(DATASETS))}, optionally with "
                        "':train' or ':test' (fashion-mnist from the Debian package, mnist from "
                        "$PYDEEPCLUST_MNIST or --data-path)")
    p.add_argument("--classes", default=None, type=_class_list, metavar="C1,C2,...",
                   help="keep only these labels, e.g. 0,1,2")
    p.add_argument("--data-path", default=None,
                   help="folder of the IDX files for fashion-mnist / mnist")
    p.add_argument("--data-seed", type=int, default=0,
                   help="seed of synthetic data and of the train/test split")
    p.add_argument("--test", action="store_true",
                   help="train on the train split and also report the test split")
    p.add_argument("--k", type=int, default=None,
                   help="number of clusters (default: the number of classes)")
    p.add_argument("--seed", type=int, default=0, help="random_state of the model")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="bf16: the networks in bfloat16 autocast, the losses in float32 "
                        "(GenKSC, RSM, ACe/DeC, DCN, AE + k-means; for GPUs)")
    p.add_argument("--out", default="runs/latest", help="output folder")
    p.add_argument("--checkpoint-every", type=int, default=10,
                   help="epochs between checkpoints to OUT/model.pt (GenKSC, RSM, ACe/DeC, DCN)")
    p.add_argument("--resume", action="store_true",
                   help="continue the fit whose checkpoint is OUT/model.pt (same options and "
                        "data; a missing file starts afresh), ending as an uninterrupted run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-pictures", action="store_true", help="skip the pictures")


def _add_reproduce_parser(sub) -> None:
    from pydeepclust.experiments import TABLES

    p = sub.add_parser(
        "reproduce", help="run a paper's table (resumable) or report it",
        description="Fit every (row, seed) of a table that the results file does not hold yet, "
                    "appending one JSON line per finished run; --report prints the table beside "
                    "the paper's numbers. Seeds side by side: one process per seed "
                    "(--seeds S --threads 1), all appending to the same --out.")
    p.add_argument("table", nargs="?", choices=sorted(TABLES), help="the table (--list: all)")
    p.add_argument("--list", action="store_true", help="list the tables and their rows")
    p.add_argument("--rows", nargs="+", default=None,
                   help="row names, or their method prefix (e.g. acedec, dcn0.1); default all")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="default: the table's seeds (0 1 2)")
    p.add_argument("--out", default=None, help="results file (default: runs/TABLE.jsonl)")
    p.add_argument("--report", action="store_true", help="print the table of --out and stop")
    p.add_argument("--png", default=None,
                   help="with --report: the bar chart of ours vs the paper (default: the results "
                        "file's name with .png; 'none' for no chart)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the estimators')")
    p.add_argument("--threads", type=int, default=None, help="torch threads of this process")
    p.add_argument("--autoencoders", default="runs/autoencoders", metavar="DIR",
                   help="pretrained autoencoders kept and reused here")
    p.add_argument("--data-path", default=None, help="folder of the IDX files (mnist / "
                   "fashion-mnist; default: $PYDEEPCLUST_MNIST / the Debian package)")
    p.add_argument("--pictures", default=None, metavar="DIR",
                   help="save each run's pictures (GenKSC traversals, ACe/DeC views) here")
    p.add_argument("--resume", action="store_true",
                   help="continue the fit whose checkpoint is OUT/model.pt (same options and "
                        "data; a missing file starts afresh), ending as an uninterrupted run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reproduce)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pydeepclust", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, show the full Python traceback, not one line")
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="train a clustering model and evaluate it")
    models = fit.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name, module_name in MODELS.items():
        module = importlib.import_module(module_name)
        p = models.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        _add_common_fit_arguments(p)
        module.add_cli_arguments(p)
        p.set_defaults(func=cmd_fit)
    _add_reproduce_parser(sub)
    info = sub.add_parser("info", help="version, build, backend and devices (JSON)")
    info.set_defaults(func=cmd_info)
    bench = sub.add_parser("bench", help="quick timing of the fused ops vs the references")
    bench.add_argument("--n", type=int, default=1_000_000, help="rows per case (default 1e6)")
    bench.add_argument("--repeats", type=int, default=10, help="timed runs per case (default 10)")
    bench.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                       help="cpu or cuda (default: cuda when available)")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for option in ("n", "repeats", "threads"):
        if getattr(args, option, None) is not None and getattr(args, option) < 1:
            parser.error(f"--{option} must be >= 1")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        if args.traceback:
            raise
        # the library's own checks name the parameter: one line says it
        parser.exit(2, f"{parser.prog}: error: {err} (--traceback shows where)\n")
