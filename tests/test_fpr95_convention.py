"""FPR95's convention: ID positive here (the paper and its official code), OOD positive in pytorch-ood 0.4.

The same MSP scores of the shipped CE seed-0 `laptop` run (CIFAR-10 test set vs Textures) give FPR95 = 73.9 %
with :func:`lnlab.ood_metrics` (the share of Textures images accepted at the threshold that keeps 95 % of the
test images) and FPR95TPR = 47.7 % with pytorch-ood's ``OODMetrics`` and its default labelling (outlier
score ``-msp``, OOD labels < 0, OOD positive: the share of test images flagged at the threshold that catches
95 % of the Textures images). The README's metrics paragraph, ``ood_metrics``'s docstring and notebook 05
quote both numbers; this test keeps them true.
"""

from __future__ import annotations

import pytest
import torch

from lnlab import ood_metrics, score
from lnlab.profiles import make_config
from lnlab.runs import get_run
from lnlab.shipped import reference_recipes


@pytest.fixture(scope="module")
def ce_seed0_scores(tmp_path_factory):
    if "laptop" not in reference_recipes():
        pytest.skip("no shipped laptop runs in the reference source")
    run = get_run(make_config("reference", loss="ce", seed=0), root=tmp_path_factory.mktemp("runs"), train=False)
    return score("msp", run.logits_for("test")), score("msp", run.logits_for("textures")), run.labels


def test_the_same_scores_give_73_9_here_and_47_7_from_pytorch_ood(ce_seed0_scores):
    from pytorch_ood.metrics import OODMetrics  # the dev extra (pyproject.toml)

    id_msp, ood_msp, labels = ce_seed0_scores
    assert (len(id_msp), len(ood_msp)) == (10000, 1200)
    ours = ood_metrics(id_msp, ood_msp)
    assert round(100 * ours["fpr95"], 1) == 73.9

    metrics = OODMetrics()  # its defaults: larger score = more OOD, labels < 0 = OOD, OOD is the positive class
    outlier_scores = -torch.cat([torch.as_tensor(id_msp), torch.as_tensor(ood_msp)]).double()
    ood_labels = torch.cat([torch.as_tensor(labels).long(), torch.full((len(ood_msp),), -1, dtype=torch.long)])
    theirs = metrics.update(outlier_scores, ood_labels).compute()
    assert round(100 * theirs["FPR95TPR"], 1) == 47.7
    assert theirs["AUROC"] == pytest.approx(ours["auroc"], abs=1e-6)  # AUROC does not depend on the labelling
    assert round(100 * ours["auroc"], 1) == 82.8

    # what each number is: ours at 95 % of ID kept, theirs at 95 % of OOD caught
    id_sorted, ood_sorted = torch.as_tensor(id_msp).double().sort().values, torch.as_tensor(ood_msp).double().sort().values
    keep_95_id = id_sorted[int(0.05 * len(id_sorted))]
    assert float((torch.as_tensor(ood_msp).double() >= keep_95_id).double().mean()) == pytest.approx(ours["fpr95"], abs=2e-3)
    catch_95_ood = ood_sorted[int(0.95 * len(ood_sorted))]
    assert float((torch.as_tensor(id_msp).double() <= catch_95_ood).double().mean()) == pytest.approx(
        theirs["FPR95TPR"], abs=2e-3)
