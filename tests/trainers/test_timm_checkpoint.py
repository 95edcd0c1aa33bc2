"""Where the timm trainer starts: training resumed from the checkpoint of epoch 1 ends with exactly the
weights of an uninterrupted run, files that are no checkpoint of this job are refused, and starting weights
(a state_dict or a checkpoint) load into what they fit."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import timm
import torch

from contracts.jobs import Hyperparameters, TimmSpec
from trainers.datasets import safe_extract
from trainers.resume import NotResumable
from trainers.timm import training
from trainers.timm.checkpoint import Checkpoint, read
from trainers.timm.weights import load_weights, read_weights
from vtp.synthetic import make_imagefolder_archive


def spec(epochs: int = 2, model: str = "resnet18") -> TimmSpec:
    hyperparameters = Hyperparameters(epochs=epochs, batch_size=8, image_size=32, learning_rate=0.003)
    return TimmSpec(framework="timm", task="classify", model=model, hyperparameters=hyperparameters)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("timm-checkpoint")
    archive = make_imagefolder_archive(
        base / "shapes.zip", classes=2, train_per_class=8, val_per_class=2, size=32
    )
    return safe_extract(archive, base / "dataset")


def train(dataset: Path, **options: object) -> tuple[training.Outcome, list[int]]:
    epochs: list[int] = []
    outcome = training.train(
        spec(),
        dataset,
        threading.Event(),
        lambda epoch, total, metrics, seconds: epochs.append(epoch),
        **options,
    )
    return outcome, epochs


@pytest.fixture(scope="module")
def uninterrupted(
    dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[training.Outcome, list[Path]]:
    """A 2-epoch run from scratch, and the checkpoint it saved after each epoch."""
    training.configure_threads()
    folder = tmp_path_factory.mktemp("checkpoints")
    saved: list[Path] = []
    outcome, epochs = train(
        dataset, on_checkpoint=lambda c: saved.append(c.save(folder / f"epoch{c.epoch}.pt"))
    )
    assert epochs == [1, 2]
    return outcome, saved


def assert_same_weights(left: training.Outcome, right: training.Outcome) -> None:
    assert left.state_dict.keys() == right.state_dict.keys()
    for name, tensor in left.state_dict.items():
        assert torch.equal(tensor, right.state_dict[name]), name


def test_resuming_from_epoch_1_ends_exactly_where_an_uninterrupted_run_ends(dataset, uninterrupted):
    whole, saved = uninterrupted
    assert [path.name for path in saved] == ["epoch1.pt", "epoch2.pt"]
    checkpoint = Checkpoint.load(saved[0])
    assert (checkpoint.epoch, checkpoint.epochs, checkpoint.model) == (1, 2, "resnet18")
    resumed, epochs = train(dataset, resume=checkpoint)
    assert epochs == [2]
    assert (resumed.epochs_done, resumed.metrics) == (2, whole.metrics)
    assert_same_weights(whole, resumed)


def test_a_checkpoint_of_the_last_epoch_has_nothing_left_to_train(dataset, uninterrupted):
    whole, saved = uninterrupted
    resumed, epochs = train(dataset, resume=Checkpoint.load(saved[-1]))
    assert epochs == []
    assert (resumed.epochs_done, resumed.metrics) == (2, whole.metrics)
    assert_same_weights(whole, resumed)


def test_what_is_no_checkpoint_of_this_job_is_refused(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(NotResumable, match="is unreadable"):
        read(garbage, spec())
    assert not garbage.exists()
    torch.save({"epoch": 3, "model": {}}, tmp_path / "other.pt")
    with pytest.raises(NotResumable, match="is not a timm checkpoint"):
        Checkpoint.load(tmp_path / "other.pt")

    checkpoint = Checkpoint(
        model="resnet18",
        classes=["a", "b"],
        epoch=1,
        epochs=2,
        metrics={},
        model_state={},
        optimizer_state={},
        rng_state=torch.get_rng_state(),
        shuffle_state=torch.Generator().get_state(),
    )
    assert read(checkpoint.save(tmp_path / "last.pt"), spec()).classes == ["a", "b"]
    assert checkpoint.mismatch(spec(model="resnet34")) == "holds a resnet18, the job trains a resnet34"
    with pytest.raises(NotResumable, match="is of a 2-epoch run, the job has 3"):
        read(checkpoint.save(tmp_path / "last.pt"), spec(epochs=3))


def test_starting_weights_are_a_state_dict_or_a_checkpoint_and_fit_what_they_can(uninterrupted, tmp_path):
    whole, saved = uninterrupted
    torch.save(whole.state_dict, tmp_path / "model.pt")
    from_model_pt = read_weights(tmp_path / "model.pt")
    from_checkpoint = read_weights(saved[-1])
    assert from_model_pt.keys() == from_checkpoint.keys() == whole.state_dict.keys()

    # Trained on 2 classes, started on 3: all but the classifier head is taken.
    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    assert load_weights(model, from_model_pt) == ["fc.bias", "fc.weight"]
    state = model.state_dict()
    assert all(torch.equal(state[name], t) for name, t in from_model_pt.items() if not name.startswith("fc."))

    with pytest.raises(ValueError, match="none of the starting weights fits"):
        load_weights(timm.create_model("mobilenetv3_small_050", pretrained=False), from_model_pt)
    (tmp_path / "garbage.pt").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="unreadable"):
        read_weights(tmp_path / "garbage.pt")
    torch.save({"epochs": 3}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no state_dict"):
        read_weights(tmp_path / "other.pt")
