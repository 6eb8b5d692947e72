"""Command line: ``lnlab train | eval | sweep | figures`` (also ``python -m lnlab``).

    lnlab train --profile ci --loss logitnorm --tau 0.04
    lnlab eval  --profile ci --loss logitnorm --tau 0.04 --scores msp energy --ood svhn mnist gaussian
    lnlab sweep --profile ci --taus 0.01 0.02 0.04 0.1 --seeds 0 1 2 --parallel 2
    lnlab sweep --profile laptop --dataset path/to/class_folders --taus 0.01 0.04 --seeds 0 1 2
    lnlab train --profile ci --loss logit_penalty --penalty 1e-3
    lnlab figures --profile quick --output figures/
    lnlab export runs/<key> --to shared/     (history + logits, no weights)
    lnlab import shared/                     (into the run cache; --profile reference reads lnlab/reference/)
    lnlab inspect model.pt --ood textures mnist --output figures/mine   (your own network: lnlab.foreign)

Runs come from the run cache (``--runs`` / ``$LNLAB_RUNS`` / ``runs/``) and are trained only if
missing. Bad input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any, Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lnlab`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    from lnlab.data import DatasetNotFoundError
    from lnlab.train import TrainingDivergedError

    try:
        return args.func(args) or 0
    except TrainingDivergedError as exc:
        print(f"lnlab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lnlab: interrupted; finished runs are kept in the run cache", file=sys.stderr)
        return 130
    except (ValueError, DatasetNotFoundError, FileNotFoundError) as exc:
        print(f"lnlab: error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lnlab", description="LogitNorm lab (Wei et al., ICML 2022): "
                                     "train, evaluate and sweep runs; build the figures.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or load from the cache or the shipped runs) one run and print its history")
    _run_args(p)
    p.add_argument("--force", action="store_true",
                   help="train again even if the run is cached or shipped (e.g. to record the full per-epoch "
                        "history of a run cached by an older lnlab)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="OOD metrics of a run's post-hoc scores (trains the run only if not cached)")
    _run_args(p)
    p.add_argument("--scores", nargs="+", default=["msp"], help="scores (see lnlab.scores), default msp")
    p.add_argument("--ood", nargs="+", default=None,
                   help="OOD sets: registered names, your own <data root>/NAME.npz or NAME/ folder, or paths "
                        "(default: the profile's sets)")
    p.add_argument("--id-set", default="test", choices=["test", "val"],
                   help="ID side: the test set, or held-out training images (validation)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("sweep", help="a CE run plus one LogitNorm run per tau (and other losses), each per seed, "
                       "several at once on Ray; ends with a summary table and the τ validation picks, with its "
                       "stability over seeds (--profile reference: the shipped runs' study, nothing trains)")
    _run_args(p, loss=False)
    p.add_argument("--taus", nargs="+", type=float, default=None,
                   help="the τ grid (default 0.005 0.01 0.02 0.04 0.1; --profile reference: every τ shipped for the "
                        "training set)")
    p.add_argument("--parallel", type=int, default=None,
                   help="runs at once: per GPU for GPU runs (fractional GPU requests), else in all "
                        "(default: one per GPU, else one per 2 CPU cores); above 1 needs Ray (lnlab[ray])")
    p.add_argument("--address", default=None,
                   help="Ray cluster to run on, e.g. auto or ray://head:10001 (default: a local Ray instance)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("figures", help="run the notebook suite with papermill and write every figure and "
                       "figures/index.html")
    p.add_argument("--profile", default="reference",
                   help="reference (default: the shipped laptop runs, nothing trained) | ci | quick | laptop | paper")
    p.add_argument("--output", default="figures", help="folder for executed notebooks and figures")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--notebooks", nargs="+", default=None, help="subset, e.g. 01 03_lower_bound")
    p.add_argument("--taus", nargs="+", type=float, default=[0.04],
                   help="LogitNorm temperatures; the first is compared with CE (default 0.04)")
    p.add_argument("--sweep-taus", nargs="+", type=float, default=None,
                   help="the τ grid of notebook 04's study (default: 0.005 0.01 0.02 0.04 0.1; reference: every τ "
                        "shipped)")
    p.add_argument("--dataset", default=None,
                   help="training set of the runs (registered name, pack or class folder; default: the profile's, "
                        "CIFAR-10); the reference profile reads the shipped runs of that set")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="seeds of every run (default: every seed the reference runs have, else 0)")
    p.add_argument("--data", default=None, help="dataset root (default $LNLAB_DATA or data/)")
    p.add_argument("--runs", default=None, help="run-cache root (default $LNLAB_RUNS or runs/)")
    p.add_argument("--jobs", type=int, default=None,
                   help="notebooks executed at once (default: one per CPU core, at most 4)")
    p.set_defaults(func=_cmd_figures)

    p = sub.add_parser("export", help="write finished runs as portable folders (history + logits, --weights: "
                       "float16 weights too) to share or ship them")
    p.add_argument("runs_to_export", nargs="+", metavar="RUNS", help="run folders or run-cache keys")
    p.add_argument("--to", required=True, help="folder that receives one <key>/ folder per run")
    p.add_argument("--sets", nargs="+", default=None,
                   help="evaluation sets to store (default: test, the run's OOD sets available here, train, "
                        "and val + gaussian_val when the run holds training images out)")
    p.add_argument("--weights", action="store_true", help="also store the final weights in float16 (weights.npz)")
    p.add_argument("--no-snapshots", dest="snapshots", action="store_false",
                   help="leave out the logits stored along training (smaller; figures of the final logits only)")
    p.add_argument("--scores", action="store_true", default=None,
                   help="store the weight-based scores (ODIN, GradNorm) of the stored sets even without --weights")
    p.add_argument("--runs", default=None, help="run-cache root for keys (default $LNLAB_RUNS or runs/)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("import", help="copy exported runs (lnlab export) into the run cache, verified")
    p.add_argument("folders", nargs="+", metavar="DIRS", help="exported run folders, or folders holding several")
    p.add_argument("--runs", default=None, help="run-cache root (default $LNLAB_RUNS or runs/)")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("inspect", help="your own network (a model file): OOD table, accuracy, ECE, MSP histograms "
                       "and the reliability diagram (lnlab.foreign)")
    p.add_argument("model_file", metavar="MODEL_FILE",
                   help="a TorchScript file, or a state_dict saved with torch.save (then --arch); the network takes "
                        "float RGB images in [0, 1], N x 3 x 32 x 32 (torchvision ToTensor), after --mean/--std")
    p.add_argument("--arch", default=None,
                   help="architecture of a state_dict: one of lnlab's (airnet, fastnet, resnet18, wrn40_2) or a "
                        "torchvision classification model (torchvision:resnet18 where lnlab has the name)")
    p.add_argument("--dataset", default="cifar10",
                   help="its training set: the test split gives labels (default cifar10)")
    p.add_argument("--ood", nargs="+", default=None,
                   help="OOD sets: registered names, your own <data root>/NAME.npz or NAME/ folder, or paths "
                        "(default: textures mnist tinyimagenet gaussian, those available here)")
    p.add_argument("--scores", nargs="+", default=["msp", "energy"],
                   help="scores (see lnlab.scores), default msp energy")
    p.add_argument("--mean", nargs=3, type=float, default=None, metavar=("R", "G", "B"),
                   help="the Normalize(mean, std) the network was trained with (default: none, images in [0, 1])")
    p.add_argument("--std", nargs=3, type=float, default=None, metavar=("R", "G", "B"))
    p.add_argument("--limit", type=int, default=None,
                   help="at most N images per set, a seeded subset (the test set class-balanced); default: every image")
    p.add_argument("--element", default=None,
                   help="index or key of the logits when the network returns a tuple or dict")
    p.add_argument("--name", default=None, help="its label in tables and figures (default: the file's stem)")
    p.add_argument("--output", default=None,
                   help="folder for the MSP histograms and the reliability diagram (PDF + PNG); default: none written")
    p.add_argument("--json", action="store_true", help="print one JSON object (accuracy, ECE, OOD metrics in %%)")
    p.add_argument("--bf16", action="store_true", help="compute the logits under bf16 autocast (default float32)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="load a whole pickled nn.Module (torch.load weights_only=False): UNSAFE, unpickling runs any "
                        "code the file contains; only for a file you trust")
    p.add_argument("--data", default=None, help="dataset root (default $LNLAB_DATA or data/)")
    p.add_argument("--runs", default=None,
                   help="run-cache root, where its logits are cached (default $LNLAB_RUNS or runs/)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_inspect)
    return parser


def _run_args(p: argparse.ArgumentParser, loss: bool = True) -> None:
    from lnlab.config import LOSSES

    p.add_argument("--profile", default="ci", help="ci | quick | laptop | paper | reference (lnlab.profiles)")
    p.add_argument("--dataset", default=None,
                   help="training set: a registered name (cifar10, cifar100, tinyimagenet100), a pack .npz, or a "
                        "folder of class sub-folders <root>/<class>/*.png (with train/ and test/, or split per class); "
                        "default: the profile's (cifar10)")
    if loss:
        p.add_argument("--loss", default="ce", help=" | ".join(LOSSES) + " (lnlab.losses)")
        p.add_argument("--tau", type=float, default=None, help="LogitNorm temperature τ (default 0.04)")
    else:
        p.add_argument("--loss", nargs="+", default=[], choices=[n for n in LOSSES if n not in ("ce", "logitnorm")],
                       help="other losses to train beside CE and the τ grid, each per seed (their λ / α: --penalty, "
                            "--smoothing)")
    p.add_argument("--penalty", type=float, default=None, help="logit penalty λ of CE + λ‖f‖² (default 1e-3)")
    p.add_argument("--smoothing", type=float, default=None, help="label smoothing α (default 0.1)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default: the profile's)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="one run per seed, e.g. --seeds 0 1 2 (default: the profile's seed, 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field, e.g. --set lr=0.05 --set ood=mnist,gaussian")
    p.add_argument("--data", default=None, help="dataset root (default $LNLAB_DATA or data/)")
    p.add_argument("--runs", default=None, help="run-cache root (default $LNLAB_RUNS or runs/)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _configs(args: argparse.Namespace, **fixed: Any) -> list:
    """One validated TrainConfig per seed from the profile, the flags and ``--set`` overrides."""
    from lnlab.profiles import make_config
    from lnlab.suite import check_seeds

    overrides = {"epochs": args.epochs, "device": args.device, "data_root": args.data, "dataset": args.dataset,
                 "loss": getattr(args, "loss", None), "tau": getattr(args, "tau", None), "penalty": args.penalty,
                 "smoothing": args.smoothing}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE (e.g. --set lr=0.05), got {item!r}")
        overrides[key.strip()] = _parse_value(value.strip())
    overrides.update(fixed)
    if args.seeds is not None and "seed" in overrides:
        raise ValueError("pass seeds with --seeds only, not also --set seed=...")
    seeds = check_seeds(args.seeds) if args.seeds is not None else [overrides.pop("seed", None)]
    return [make_config(args.profile, **overrides, **({} if seed is None else {"seed": seed})) for seed in seeds]


def _parse_value(text: str) -> Any:
    """JSON if it parses (numbers, true/false/null, lists), 'none' -> None, 'a,b' -> tuple, else text."""
    if text.lower() == "none":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return tuple(t.strip() for t in text.split(",")) if "," in text else text
    return tuple(value) if isinstance(value, list) else value


# ---------------------------------------------------------------------- commands
def _not_reference(args: argparse.Namespace) -> None:
    """The reference profile's runs are loaded, never trained (their recipe trains as its own profile)."""
    from lnlab.profiles import REFERENCE

    if args.profile == REFERENCE:
        raise ValueError(f"the {REFERENCE} profile's runs are shipped, never trained here: read them with "
                         f"`lnlab eval --profile {REFERENCE}`, or train their recipe with `--profile laptop`")


def _cmd_train(args: argparse.Namespace) -> int:
    from lnlab.runs import forget_run, get_run

    _not_reference(args)
    columns = ["lr", "train_loss", "train_acc", "test_loss", "test_acc", "norm_train_mean", "norm_test_mean", "seconds"]
    for config in _configs(args):
        if args.force and forget_run(config, root=args.runs):
            print(f"{config.label()} · seed {config.seed}: removed the cached run {config.key()}; training it again")
        run = get_run(config, root=args.runs, progress=not args.no_progress, reference=not args.force)
        print(f"{config.label()} · seed {config.seed} · {config.model} · {'cached' if run.from_cache else 'trained'}"
              f" · {run.directory}")
        print(run.history_frame()[columns].to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from lnlab.evaluate import accuracy_table, check_scores, ood_table
    from lnlab.profiles import REFERENCE
    from lnlab.runs import Seeds, get_run
    from lnlab.tables import paper_layout

    check_scores(args.scores)
    configs = _configs(args)
    if args.id_set == "val":
        from lnlab.splits import check_held_out

        check_held_out(configs[0])
    reference = args.profile == REFERENCE  # shipped runs without weights: their stored sets, never trained
    oods = list(args.ood or configs[0].ood) if reference else _available_oods(configs[0], args.ood)
    configs = [c.replace(ood=tuple(oods)) for c in configs]
    runs = {configs[0].label(): Seeds(get_run(c, root=args.runs, progress=not args.no_progress, train=not reference)
                                      for c in configs)}
    accuracy = accuracy_table(runs, args.id_set).iloc[0]
    print(f"{configs[0].label()} · {configs[0].model} · seeds {[c.seed for c in configs]} · "
          f"{args.id_set} accuracy {_mean_std(accuracy['accuracy_mean'], accuracy['accuracy_std'])}% · "
          f"{runs[configs[0].label()][0].directory}")
    table = ood_table(runs, scores=args.scores, oods=oods, id_set=args.id_set)
    print(f"ID: {args.id_set}; %, mean ± std over seeds; FPR95 lower is better, AUROC / AUPR higher")
    print(paper_layout(table).droplevel("run", axis=1).to_string())
    return 0


def _available_oods(config, asked: list[str] | None) -> list[str]:
    """OOD sets to evaluate, checked before any training: asked-for sets must exist (else an error);
    the profile's default sets that are missing here are skipped with a one-line warning."""
    from lnlab.data import DatasetNotFoundError
    from lnlab.splits import eval_set

    names = list(asked) if asked else list(config.ood)
    config = config.replace(ood=tuple(names))  # validates the names
    found = []
    for name in names:
        try:
            eval_set(config, name)
            found.append(name)
        except DatasetNotFoundError as exc:
            if asked:
                raise
            print(f"lnlab: warning: skipping OOD set {name!r}: not available locally ({str(exc).split('. ')[0]})",
                  file=sys.stderr)
    if not found:
        raise ValueError("no OOD set is available; pass --ood with a set under your data root")
    return found


def _mean_std(mean: float, std: float) -> str:
    from lnlab.tables import cell

    return cell(mean, std, 2)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from lnlab.profiles import REFERENCE, sweep_taus
    from lnlab.runs import Seeds
    from lnlab.sweep import run_sweep

    taus = [float(t) for t in args.taus] if args.taus else sweep_taus(args.profile, None, args.dataset)
    if args.profile == REFERENCE:  # the shipped runs' τ study: read, never trained
        return _shipped_sweep(args, taus)
    groups = ([_configs(args, loss="ce")] + [_configs(args, loss="logitnorm", tau=t) for t in taus]
              + [_configs(args, loss=name) for name in args.loss])
    oods = _available_oods(groups[0][0], None)
    groups = [[c.replace(ood=tuple(oods)) for c in configs] for configs in groups]
    result = run_sweep([c for configs in groups for c in configs], root=args.runs, parallel=args.parallel,
                       address=args.address, progress=not args.no_progress)
    runs = {configs[0].label(): Seeds(result.runs[c.key()] for c in configs if c.key() in result.runs)
            for configs in groups}
    runs = {label: group for label, group in runs.items() if group}
    if runs:
        _print_sweep(args, runs, oods, lambda run: run.key not in result.trained, "cached", taus)
    if result.failures:
        print(f"lnlab: {len(result.failures)} of the sweep's runs failed (the [sweep] FAILED lines above)",
              file=sys.stderr)
    return 1 if result.failures else 0


def _shipped_sweep(args: argparse.Namespace, taus: list[float]) -> int:
    """``lnlab sweep --profile reference``: the same summary and τ pick, from the shipped runs of the training set
    (each τ with every seed shipped for it, unless --seeds); asking for a run that is not shipped is an error that
    lists what is."""
    from lnlab.comparisons import comparison_runs
    from lnlab.losses import TRAINING_LOSSES

    if args.parallel is not None or args.address is not None:
        raise ValueError("--parallel and --address train runs; the reference profile only reads the shipped ones")
    losses = []
    for name in args.loss:  # each loss at its --penalty / --smoothing, else the training default (as lnlab train)
        field = TRAINING_LOSSES[name][1]
        losses.append({"loss": name, **({} if field is None else {field: getattr(_configs(args, loss=name)[0], field)})})
    runs = comparison_runs(args.profile, taus=taus, losses=losses, seeds=args.seeds, dataset=args.dataset,
                           validation=True, each_seeds=args.seeds is None, strict=True, progress=False)
    oods = list(next(iter(runs.values()))[0].config.ood)
    _print_sweep(args, runs, oods, lambda run: True, "shipped", taus)
    return 0


def _print_sweep(args: argparse.Namespace, runs: dict, oods: list[str], found: Any, found_name: str,
                 taus: list[float]) -> None:
    """One row per configuration (accuracy, mean MSP FPR95 / AUROC over ``oods``, final training loss,
    ``found_name``: whether every run was there already), then the τ validation pick (:func:`_print_tau_choice`)."""
    import pandas as pd

    from lnlab.evaluate import accuracy_table, ood_table

    means = ood_table(runs, ["msp"], oods).loc["mean"]
    accuracy = accuracy_table(runs)
    cell = lambda label, metric: _mean_std(means[(label, "msp", metric, "mean")],  # noqa: E731
                                           means[(label, "msp", metric, "std")])
    rows = [{"run": label, "seeds": len(group),
             "test_acc": _mean_std(*accuracy.loc[label, ["accuracy_mean", "accuracy_std"]]),
             "msp_fpr95": cell(label, "fpr95"), "msp_auroc": cell(label, "auroc"),
             "final_train_loss": f"{pd.Series([r.final_train_loss for r in group]).mean():.3g}",
             found_name: all(found(r) for r in group)} for label, group in runs.items()]
    print(f"profile {args.profile}: % (mean ± std over seeds); OOD metrics are means over {oods}")
    print(pd.DataFrame(rows).to_string(index=False))
    _print_tau_choice(args, runs, taus)


def _print_tau_choice(args: argparse.Namespace, runs: dict, taus: list[float]) -> None:
    """The τ validation picks (held-out images vs the validation OOD sets, lnlab.tau), how stable it is over the
    seeds, and the command that draws these runs in notebook 04."""
    from lnlab.profiles import REFERENCE
    from lnlab.tau import pick_stability

    first = next(iter(runs.values()))[0].config
    if first.subset_per_class is None or sum(r[0].config.loss == "logitnorm" for r in runs.values()) < 1:
        print("no validation pick: the runs hold no training images out (pass a profile that does, e.g. laptop)")
        return
    print(pick_stability(runs).summary())
    seeds = sorted({r.config.seed for group in runs.values() for r in group})
    command = ["lnlab figures", f"--profile {args.profile}", "--notebooks 04",
               f"--sweep-taus {' '.join(f'{t:g}' for t in taus)}"]
    if args.seeds is not None or args.profile != REFERENCE:  # reference: each τ with its own shipped seeds
        command.append(f"--seeds {' '.join(map(str, seeds))}")
    command += [f"--dataset {args.dataset}"] if args.dataset else []
    command += [f"--runs {args.runs}"] if args.runs else []
    command += [f"--data {args.data}"] if args.data else []
    print("these runs in notebook 04 (figure and table in figures/): " + " ".join(command))


def _cmd_figures(args: argparse.Namespace) -> int:
    from lnlab.profiles import DEFAULT_SWEEP
    from lnlab.suite import check_seeds, run_suite

    extra = {"taus": args.taus, "seeds": None if args.seeds is None else check_seeds(args.seeds),
             "sweep_taus": args.sweep_taus or (None if args.profile == "reference" else list(DEFAULT_SWEEP))}
    if args.dataset is not None:
        extra["dataset"] = args.dataset
    files = run_suite(profile=args.profile, output=args.output, device=args.device, notebooks=args.notebooks,
                      data_root=args.data, runs_root=args.runs, jobs=args.jobs, extra_parameters=extra)
    print(f"{len(files)} figure files written to {args.output}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lnlab.paths import runs_root
    from lnlab.portable import export_run

    for name in args.runs_to_export:
        folder = Path(name).expanduser()
        if not folder.is_dir():
            folder = runs_root(args.runs) / name
            if not folder.is_dir():
                raise ValueError(f"{name!r} is neither a run folder nor a key in the run cache {folder.parent}")
        target = export_run(folder, args.to, sets=args.sets, weights=args.weights, snapshots=args.snapshots,
                            scores=args.scores)
        size = sum(p.stat().st_size for p in target.iterdir() if p.is_file())
        print(f"{target}  {size / 1024:.0f} KiB")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from lnlab.portable import import_runs

    imported = import_runs(args.folders, root=args.runs, report=print)
    print(f"{len(imported)} run(s) imported")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    """``lnlab inspect``: every check first (scores, normalisation, sets, the file and one batch through the
    network), then the logits of every set (cached), the tables and, with ``--output``, the figures."""
    from pathlib import Path

    import torch

    from lnlab import calibration, plots
    from lnlab.evaluate import accuracy_table, check_scores, ood_table
    from lnlab.foreign import ForeignConfig, input_normalisation, load_network
    from lnlab.metrics import ece
    from lnlab.tables import paper_layout

    check_scores(args.scores)
    input_normalisation(args.mean, args.std)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit takes a positive number of images per set, got {args.limit}")
    name = args.name or Path(args.model_file).stem
    oods = _available_oods(ForeignConfig(name=name, dataset=args.dataset, ood_limit=args.limit, data_root=args.data),
                           args.ood)
    element = int(args.element) if args.element is not None and args.element.lstrip("-").isdigit() else args.element
    net = load_network(args.model_file, arch=args.arch, name=name, dataset=args.dataset, mean=args.mean, std=args.std,
                       element=element, ood=oods, limit=args.limit, bf16=args.bf16, device=args.device,
                       data_root=args.data, runs_root=args.runs, progress=not args.no_progress,
                       unsafe_pickle=args.unsafe_pickle)
    runs = {name: net}
    table = ood_table(runs, scores=args.scores, oods=oods)
    accuracy = float(accuracy_table(runs).loc[name, "accuracy_mean"])
    error = 100 * ece(torch.softmax(net.logits_for("test"), 1), net.labels, 15)
    if args.json:
        print(json.dumps({"model": name, "dataset": args.dataset, "accuracy": accuracy, "ece": error,
                          "ood": {ood: {s: {"fpr95": table.loc[ood, (name, s, "fpr95", "mean")],
                                            "auroc": table.loc[ood, (name, s, "auroc", "mean")],
                                            "aupr_in": table.loc[ood, (name, s, "aupr", "mean")]} for s in args.scores}
                                  for ood in oods}}))
    else:
        print(f"{name} · {net.config.model} · {args.dataset} test accuracy {accuracy:.2f}% on {len(net.labels)} "
              f"images · ECE {error:.2f}% (raw softmax, 15 bins) · logits cached in {net.directory}")
        print("ID: test; %; FPR95 lower is better, AUROC / AUPR higher")
        print(paper_layout(table).droplevel("run", axis=1).to_string())
    if args.output is not None:
        import matplotlib.pyplot as plt

        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        written = []
        for ood in oods:
            fig = plots.plot_runs_histograms(runs, ood, "msp")
            written += plots.save_figure(fig, f"{stem}_msp_{Path(ood).stem}", args.output)
            plt.close(fig)
        panels, eces = calibration.reliability_panels(calibration.calibrate_runs(runs))
        fig = plots.plot_reliability_diagrams(panels, eces)
        written += plots.save_figure(fig, f"{stem}_reliability", args.output)
        plt.close(fig)
        print("\n".join(f"wrote {path}" for path in written), file=sys.stderr if args.json else sys.stdout)
    return 0
