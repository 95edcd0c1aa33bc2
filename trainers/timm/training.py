"""The training loop: an imagefolder dataset, a timm model, per-epoch metrics and checkpoints, a stop flag
checked between batches (of training and of validation: an epoch cut short in either is not done), and
resuming from a checkpoint. No callbacks here: `on_epoch`, `on_checkpoint` and `stop` come from the caller."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from contracts.jobs import TimmSpec
from telemetry import tracing
from trainers.failures import DatasetUnfit
from trainers.timm.checkpoint import Checkpoint
from trainers.timm.weights import load_weights

log = logging.getLogger(__name__)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VAL_FOLDERS = ("val", "valid", "validation", "test")


@dataclass
class Outcome:
    classes: list[str]
    epochs_done: int = 0
    stopped: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)


def configure_threads() -> None:
    """Use the cores this process may run on (2 on a small box), and no extra inter-op pool."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started
        pass


def _loaders(
    root: Path, image_size: int, batch_size: int, shuffle: torch.Generator
) -> tuple[DataLoader, DataLoader, list[str]]:
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DatasetUnfit("the dataset has no train/ folder (imagefolder layout: train/<class>/*.png)")
    val_dir = next((root / name for name in VAL_FOLDERS if (root / name).is_dir()), train_dir)
    normalize = transforms.Normalize(MEAN, STD)
    train_tf = transforms.Compose(
        [
            transforms.Resize((image_size, image_size)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            normalize,
        ]
    )
    val_tf = transforms.Compose(
        [transforms.Resize((image_size, image_size)), transforms.ToTensor(), normalize]
    )
    try:
        train_set = datasets.ImageFolder(str(train_dir), transform=train_tf)
        val_set = datasets.ImageFolder(str(val_dir), transform=val_tf)
    except FileNotFoundError as exc:  # torchvision: no class folder, or a class without images
        raise DatasetUnfit(str(exc)) from exc
    if val_set.classes != train_set.classes:
        raise DatasetUnfit(f"val classes {val_set.classes} differ from train classes {train_set.classes}")
    if len(train_set.classes) < 2:
        raise DatasetUnfit("a classification dataset needs at least two classes")
    train_loader = DataLoader(
        train_set, batch_size=batch_size, shuffle=True, generator=shuffle, num_workers=0
    )
    val_loader = DataLoader(val_set, batch_size=batch_size, shuffle=False, num_workers=0)
    return train_loader, val_loader, list(train_set.classes)


def _evaluate(
    model: nn.Module, loader: DataLoader, device: torch.device, stop: threading.Event
) -> tuple[float, float] | None:
    """Validation loss and accuracy; None when `stop` cut it short (a large validation set takes minutes,
    more than a preemption's grace)."""
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            if stop.is_set():
                return None
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += labels.numel()
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def _restore(
    checkpoint: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    outcome: Outcome,
) -> None:
    if checkpoint.classes != outcome.classes:
        raise ValueError(
            f"the checkpoint's classes {checkpoint.classes} differ from the dataset's {outcome.classes}"
        )
    model.load_state_dict(checkpoint.model_state)
    optimizer.load_state_dict(checkpoint.optimizer_state)
    torch.set_rng_state(checkpoint.rng_state)
    shuffle.set_state(checkpoint.shuffle_state)
    outcome.epochs_done = checkpoint.epoch
    outcome.metrics = dict(checkpoint.metrics)


def train(
    spec: TimmSpec,
    dataset_root: Path,
    stop: threading.Event,
    on_epoch: Callable[[int, int, dict[str, float], float], None],
    *,
    resume: Checkpoint | None = None,
    weights: dict[str, torch.Tensor] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
) -> Outcome:
    """Train `spec` from a random initialisation or from `weights`, or go on from `resume` (its epoch + 1 to
    the end). `on_checkpoint` gets each finished epoch's checkpoint before `on_epoch` hears of the epoch."""
    hp = spec.hyperparameters
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shuffle = torch.Generator().manual_seed(0)
    train_loader, val_loader, classes = _loaders(dataset_root, hp.image_size, hp.batch_size, shuffle)
    model = timm.create_model(spec.model, pretrained=False, num_classes=len(classes)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate)
    outcome = Outcome(classes=classes)
    if resume is not None:
        _restore(resume, model, optimizer, shuffle, outcome)
    elif weights is not None:
        load_weights(model, weights)
    log.info(
        "training %s on %s: %d classes, %d images",
        spec.model,
        device,
        len(classes),
        len(train_loader.dataset),
    )
    for epoch in range(outcome.epochs_done + 1, hp.epochs + 1):
        started = time.monotonic()
        # Its checkpoint and its report go out under it (trainers/resume.py hands the context on).
        with tracing.span("epoch", attributes={"vtp.epoch": epoch, "vtp.epochs": hp.epochs}):
            model.train()
            loss_sum, seen = 0.0, 0
            for images, labels in train_loader:
                if stop.is_set():
                    outcome.stopped = True
                    break
                images, labels = images.to(device), labels.to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(images), labels)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * labels.numel()
                seen += labels.numel()
            if outcome.stopped or (validated := _evaluate(model, val_loader, device, stop)) is None:
                outcome.stopped = True
                break
            val_loss, val_accuracy = validated
            outcome.epochs_done = epoch
            outcome.metrics = {
                "train_loss": round(loss_sum / max(seen, 1), 6),
                "val_loss": round(val_loss, 6),
                "val_accuracy": round(val_accuracy, 6),
            }
            if on_checkpoint is not None:
                on_checkpoint(
                    Checkpoint(
                        model=spec.model,
                        classes=classes,
                        epoch=epoch,
                        epochs=hp.epochs,
                        metrics=outcome.metrics,
                        model_state=model.state_dict(),
                        optimizer_state=optimizer.state_dict(),
                        rng_state=torch.get_rng_state(),
                        shuffle_state=shuffle.get_state(),
                    )
                )
            on_epoch(epoch, hp.epochs, outcome.metrics, time.monotonic() - started)
    outcome.state_dict = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    return outcome
