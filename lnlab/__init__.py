"""lnlab: see and tune neural-network overconfidence and its fix, LogitNorm.

Wei et al., "Mitigating Neural Network Overconfidence with Logit Normalization", ICML 2022.

Public names are importable from the package root (``from lnlab import logit_norm_loss``);
they are loaded lazily (PEP 562) so that ``import lnlab`` stays cheap and a module is only
imported when one of its names is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # losses (paper Eq. 5-7, Prop. 3)
    "logit_norm_loss": "losses",
    "LogitNormLoss": "losses",
    "lower_bound": "losses",
    "tight_lower_bound": "losses",
    "confidence_cap": "losses",
    # post-hoc OOD scores
    "score": "scores",
    "available_scores": "scores",
    # metrics
    "ood_metrics": "metrics",
    "ece": "metrics",
    "reliability_bins": "metrics",
    "accuracy": "metrics",
    # data
    "load_dataset": "data",
    "available_datasets": "data",
    "Loader": "data",
    "ImageSet": "data",
    "DatasetNotFoundError": "data",
    # models, training, run cache, profiles
    "build_model": "models",
    "available_models": "models",
    "TrainConfig": "train",
    "get_run": "runs",
    "Run": "runs",
    "PROFILES": "profiles",
    "make_config": "profiles",
    "get_pair": "runs",
    "list_runs": "runs",
    "load_run": "runs",
    "TrainingDivergedError": "train",
    "is_cached": "runs",
    # runs without weights: share, import, the reference source
    "PortableRun": "portable",
    "export_run": "portable",
    "import_runs": "portable",
    "load_portable": "portable",
    # figures, explorers and the notebook suite (paper Fig. 1-3, Prop. 3)
    "plot_norm_vs_epoch": "plots",
    "plot_msp_histograms": "plots",
    "plot_lower_bound": "bound_plots",
    "save_figure": "plots",
    "score_explorer": "widgets",
    "bound_explorer": "bound_widgets",
    "tau_explorer": "widgets",
    "toy_explorer": "toy_widgets",
    "plot_reliability_diagrams": "plots",
    "fit_temperature": "calibration",
    "run_suite": "suite",
    "comparison_runs": "suite",
    # evaluation (paper Table 1, Sec. 5) and choosing tau on validation data (Sec. 5.1)
    "ood_table": "evaluate",
    "accuracy_table": "evaluate",
    "Seeds": "runs",
    "pick_tau": "tau",
    # a network lnlab did not train: as a run, and the norm record of its own training loop
    "load_network": "foreign",
    "NormRecorder": "recorder",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'lnlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lnlab.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
