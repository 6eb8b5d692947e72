"""Any labelled image set as a run's training set: registered names, packs, folders of class sub-folders
(lnlab.data.training_set_path, lnlab._labelled), k from the data, validation held out per class, and OOD
sets that share images or classes with the training set refused before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lnlab import _labelled
from lnlab.config import TrainConfig
from lnlab.data import DatasetNotFoundError, images_per_class, load_dataset, overlapping_ood
from lnlab.profiles import make_config
from lnlab.splits import eval_set, load_train_data, tracked_sets
from lnlab.train import train
from tests.tests_support import requires_cifar10

CLASSES = ("ant", "bee", "cat")


def write_folder(root, per_class, size=40, seed=0):
    """``root/<class>/<i>.png``: RGB images whose mean colour depends on the class (a learnable task)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3)) + 90 * c
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_a_folder_of_class_folders_is_split_per_class_with_a_fixed_seed(tmp_path):
    folder = write_folder(tmp_path / "bugs", per_class=10)
    train = load_dataset(str(folder), "train")
    test = load_dataset(str(folder), "test", labelled=True)
    assert train.classes == test.classes == list(CLASSES)
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8  # 40 px resized to 32
    assert torch.bincount(test.labels).tolist() == [2, 2, 2]  # TEST_FRACTION of every class
    assert torch.bincount(train.labels).tolist() == [8, 8, 8]
    again = load_dataset(str(folder), "test", labelled=True)
    assert torch.equal(again.images, test.images)
    every = {bytes(x.numpy()) for x in torch.cat([train.images, test.images])}
    assert len(every) == 30  # the two splits are disjoint and cover the folder


def test_train_and_test_sub_folders_keep_their_split_and_align_classes(tmp_path):
    write_folder(tmp_path / "set" / "train", per_class=6)
    write_folder(tmp_path / "set" / "test", per_class=2, seed=1)
    (tmp_path / "set" / "test" / "ant").rename(tmp_path / "ant-moved")  # the test split lacks a class
    train = load_dataset(str(tmp_path / "set"), "train")
    test = load_dataset(str(tmp_path / "set"), "test", labelled=True)
    assert len(train) == 18 and len(test) == 4
    assert sorted(set(test.labels.tolist())) == [1, 2]  # bee and cat keep their training indices


def test_a_pack_with_splits_is_a_training_set_by_name_under_the_data_root(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", x_train=rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8),
             y_train=np.repeat(np.arange(4), 3), x_test=rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8),
             y_test=np.repeat(np.arange(4), 2), classes=np.array(["a", "b", "c", "d"]))
    train = load_dataset("mine", "train", root=tmp_path)
    assert len(train) == 12 and train.classes == ["a", "b", "c", "d"]
    assert images_per_class("mine", root=tmp_path) == 3


def test_unknown_training_sets_and_ood_sets_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'nowhere'.*cifar10.*class") as error:
        TrainConfig(dataset="nowhere", data_root=str(tmp_path))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="'mnist' is an OOD set, not a training set"):
        TrainConfig(dataset="mnist")
    with pytest.raises(DatasetNotFoundError, match="unknown dataset"):
        load_dataset(str(tmp_path / "missing"), "train")


def test_an_ood_set_sharing_images_or_classes_with_the_training_set_is_refused_before_any_work():
    reason = overlapping_ood("tinyimagenet100", "tinyimagenet")
    assert "shares images and classes" in reason and "'tinyimagenet100-other'" in reason
    assert overlapping_ood("cifar10", "tinyimagenet") is None
    with pytest.raises(ValueError, match="use 'tinyimagenet100-other' instead"):
        TrainConfig(dataset="tinyimagenet100", ood=("textures", "tinyimagenet"))
    config = TrainConfig(dataset="tinyimagenet100", ood=("textures",))
    with pytest.raises(ValueError, match="shares images and classes"):
        eval_set(config, "tinyimagenet")  # asked for later, e.g. Run.logits_for("tinyimagenet")


def test_profiles_carry_over_to_another_training_set(tmp_path):
    cifar = make_config("laptop")
    assert cifar.subset_per_class == 4500 and "tinyimagenet" in cifar.ood  # the shipped runs' recipe, unchanged
    tin = make_config("laptop", dataset="tinyimagenet100")
    assert tin.subset_per_class == 450  # 10 % of 500 per class held out
    assert "tinyimagenet" not in tin.ood and "tinyimagenet100-other" in tin.ood
    folder = write_folder(tmp_path / "bugs", per_class=25)
    own = make_config("laptop", dataset=str(folder))
    assert own.subset_per_class == 18  # 20 training images per class (5 went to test), 2 held out
    assert make_config("laptop", dataset=str(folder), subset_per_class=10).subset_per_class == 10
    assert make_config("ci").subset_per_class == 500 and make_config("ci").test_subset_per_class == 100
    small = make_config("ci", dataset="tinyimagenet100")  # ci trains on 10 % of each class, tests on 10 %
    assert (small.subset_per_class, small.test_subset_per_class) == (50, 5)


def test_a_user_set_enters_the_cache_key_by_its_content(tmp_path):
    folder = write_folder(tmp_path / "bugs", per_class=6)
    config = TrainConfig(dataset=str(folder), subset_per_class=3, ood=("gaussian",))
    first = config.key()
    assert config.canonical()["dataset_fingerprint"] == _labelled.fingerprint(folder.resolve())
    pixels = np.full((32, 32, 3), 7, dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "bee" / "0.png")  # one image changes
    assert TrainConfig(dataset=str(folder), subset_per_class=3, ood=("gaussian",)).key() != first
    assert "dataset_fingerprint" not in TrainConfig().canonical()  # registered sets: the name alone


@requires_cifar10  # the tracked OOD sets include the offline packs
def test_a_run_trains_on_a_folder_with_a_head_of_k_classes_and_validation_sets(tmp_path):
    folder = write_folder(tmp_path / "bugs", per_class=30)
    config = make_config("ci", dataset=str(folder), epochs=2, batch_size=16, test_subset_per_class=None,
                         norm_subset=30, ood=("gaussian",), ood_limit=40, subset_per_class=22)
    assert make_config("ci", dataset=str(folder)).subset_per_class == 2  # ci trains on 10 % of each class's 24
    data = load_train_data(config)
    assert data.num_classes == 3 and "val" in tracked_sets(config) and len(data.eval_images["val"]) == 6
    result = train(config, progress=False)
    assert result.logits["test"].shape == (18, 3) and result.classes == list(CLASSES)
    assert result.history[-1]["test_acc"] > 0.6  # the classes differ in colour: learnable in 2 epochs
