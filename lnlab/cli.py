"""Command line: ``lnlab train | eval | sweep | figures`` (also ``python -m lnlab``).

    lnlab train --profile ci --loss logitnorm --tau 0.04
    lnlab eval  --profile ci --loss logitnorm --tau 0.04 --scores msp energy --ood svhn mnist gaussian
    lnlab sweep --profile ci --taus 0.01 0.02 0.04 0.1
    lnlab figures --profile quick --output figures/

Runs come from the run cache (``--runs`` / ``$LNLAB_RUNS`` / ``runs/``) and are trained only if
missing. Bad input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
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
    except (ValueError, DatasetNotFoundError, FileNotFoundError) as exc:
        print(f"lnlab: error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lnlab", description="LogitNorm lab (Wei et al., ICML 2022): "
                                     "train, evaluate and sweep runs; build the figures.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or load from the cache) one run and print its history")
    _run_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="OOD metrics of a run's post-hoc scores (trains the run if needed)")
    _run_args(p)
    p.add_argument("--scores", nargs="+", default=["msp"], help="scores (see lnlab.scores), default msp")
    p.add_argument("--ood", nargs="+", default=None, help="OOD sets (default: the run's tracked sets)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("sweep", help="a CE run plus one LogitNorm run per tau, with a summary table")
    _run_args(p, loss=False)
    p.add_argument("--taus", nargs="+", type=float, default=[0.01, 0.02, 0.04, 0.1])
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("figures", help="run the notebook suite with papermill and write every figure")
    p.add_argument("--profile", default="quick")
    p.add_argument("--output", default="figures", help="folder for executed notebooks and figures")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--notebooks", nargs="+", default=None, help="subset, e.g. 01 03_lower_bound")
    p.add_argument("--taus", nargs="+", type=float, default=[0.04],
                   help="LogitNorm temperatures; the first is compared with CE (default 0.04)")
    p.add_argument("--data", default=None, help="dataset root (default $LNLAB_DATA or data/)")
    p.add_argument("--runs", default=None, help="run-cache root (default $LNLAB_RUNS or runs/)")
    p.set_defaults(func=_cmd_figures)
    return parser


def _run_args(p: argparse.ArgumentParser, loss: bool = True) -> None:
    p.add_argument("--profile", default="ci", help="ci | quick | paper (lnlab.profiles)")
    if loss:
        p.add_argument("--loss", default="ce", help="ce | logitnorm")
        p.add_argument("--tau", type=float, default=None, help="LogitNorm temperature (default 0.04)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default: the profile's)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any TrainConfig field, e.g. --set lr=0.05 --set ood=mnist,gaussian")
    p.add_argument("--data", default=None, help="dataset root (default $LNLAB_DATA or data/)")
    p.add_argument("--runs", default=None, help="run-cache root (default $LNLAB_RUNS or runs/)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _config(args: argparse.Namespace, **fixed: Any):
    from lnlab.profiles import make_config

    overrides = {"epochs": args.epochs, "device": args.device, "seed": args.seed, "data_root": args.data,
                 "loss": getattr(args, "loss", None), "tau": getattr(args, "tau", None)}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE (e.g. --set lr=0.05), got {item!r}")
        overrides[key.strip()] = _parse_value(value.strip())
    overrides.update(fixed)
    return make_config(args.profile, **overrides)


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
def _cmd_train(args: argparse.Namespace) -> int:
    from lnlab.runs import get_run

    config = _config(args)
    run = get_run(config, root=args.runs, progress=not args.no_progress)
    columns = ["lr", "train_loss", "train_acc", "test_loss", "test_acc", "norm_train_mean", "norm_test_mean", "seconds"]
    print(f"{config.label()} · {config.model} · {'cached' if run.from_cache else 'trained'} · {run.directory}")
    print(run.history_frame()[columns].to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import pandas as pd

    from lnlab.metrics import ood_metrics
    from lnlab.runs import get_run

    config = _config(args)
    run = get_run(config, root=args.runs, progress=not args.no_progress)
    names = list(args.ood or config.ood)
    print(f"{config.label()} · {config.model} · test accuracy {100 * run.test_acc:.2f}% · {run.directory}")
    for score_name in args.scores:
        scores = _scores(run, score_name, names)
        rows = {name: ood_metrics(scores["test"], s) for name, s in scores.items() if name != "test"}
        if not rows:
            print("no OOD set available; nothing to evaluate", file=sys.stderr)
            return 2
        table = 100 * pd.DataFrame(rows).T[["fpr95", "auroc", "aupr_in"]]
        table.loc["mean"] = table.mean()
        print(f"\nscore: {score_name}  (%; fpr95 lower is better, auroc/aupr_in higher)")
        print(table.to_string(float_format=lambda v: f"{v:.2f}"))
    return 0


def _scores(run, score_name: str, names: list[str]) -> dict:
    """Scores of the ID test set and every available OOD set in ``names`` (missing sets: warned, skipped)."""
    from lnlab.data import DatasetNotFoundError
    from lnlab.scores import LOGIT_SCORES, available_scores, score

    if score_name not in available_scores():
        raise ValueError(f"unknown score {score_name!r}; pass --scores from {available_scores()}")
    out = {}
    for name in ["test", *names]:
        try:
            if score_name in LOGIT_SCORES:
                out[name] = score(score_name, _logits(run, name))
            else:
                out[name] = _model_score(run, score_name, name)
        except DatasetNotFoundError as exc:
            print(f"lnlab: warning: skipping OOD set {name!r}: not available locally ({str(exc).split('. ')[0]})",
                  file=sys.stderr)
    return out


def _logits(run, name: str):
    """Cached logits, or logits computed with the run's final model for a set it did not track."""
    if name in run.logits:
        return run.logits[name]
    cache = run.__dict__.setdefault("_extra_logits", {})
    if name not in cache:
        from lnlab.norms import eval_loader, predict

        model, device = _model_on_device(run)
        cache[name] = predict(model, eval_loader(_images(run, name), device, channels_last=False))
    return cache[name]


def _model_score(run, score_name: str, name: str):
    import torch

    from lnlab.data import Loader
    from lnlab.scores import score

    model, device = _model_on_device(run)
    loader = Loader(_images(run, name), None, batch_size=256, device=device)
    return torch.cat([score(score_name, model=model, x=x).cpu() for x, _ in loader])


def _images(run, name: str):
    from lnlab.norms import load_eval_sets

    if name == "test":
        return load_eval_sets(run.config, names=())["test"].images
    return load_eval_sets(run.config, names=(name,))[name].images


def _model_on_device(run):
    import torch

    if "_model" not in run.__dict__:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        run.__dict__["_model"] = (run.model().to(device), device)
    return run.__dict__["_model"]


def _cmd_sweep(args: argparse.Namespace) -> int:
    import pandas as pd

    from lnlab.metrics import ood_metrics
    from lnlab.runs import get_run
    from lnlab.scores import score

    configs = [_config(args, loss="ce")] + [_config(args, loss="logitnorm", tau=t) for t in args.taus]
    rows = []
    for config in configs:
        run = get_run(config, root=args.runs, progress=not args.no_progress)
        msp_id = score("msp", run.logits["test"])
        metrics = pd.DataFrame([ood_metrics(msp_id, score("msp", v)) for k, v in run.logits.items() if k != "test"])
        rows.append({"loss": config.loss, "tau": None if config.loss == "ce" else config.tau,
                     "test_acc": 100 * run.test_acc, "msp_fpr95": 100 * metrics["fpr95"].mean(),
                     "msp_auroc": 100 * metrics["auroc"].mean(), "final_train_loss": run.final_train_loss,
                     "cached": run.from_cache})
    print(f"profile {args.profile}: mean over OOD sets {list(configs[0].ood)} (%)")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep="-"))
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from lnlab.suite import run_suite

    files = run_suite(profile=args.profile, output=args.output, device=args.device, notebooks=args.notebooks,
                      data_root=args.data, runs_root=args.runs, extra_parameters={"taus": args.taus})
    print(f"{len(files)} figure files written to {args.output}")
    return 0
