"""Starting a timm model from given weights instead of a random initialisation: a plain state_dict (a timm
job's `model.pt`, or any `torch.save(model.state_dict())`), or this trainer's checkpoint (`last.pt`).
Tensors that do not fit (a classifier head for another number of classes) keep their initialisation, so
weights trained on other classes still start a fine-tuning."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from trainers.failures import WeightsUnfit
from trainers.timm.checkpoint import FORMAT

log = logging.getLogger(__name__)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Raises `WeightsUnfit` (a `ValueError`) for a file that holds no state_dict."""
    try:
        # weights_only: tensors and plain data only, never code from an uploaded file.
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnfit(f"the starting weights are unreadable ({type(exc).__name__}: {exc})") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        data = data.get("model_state")
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsUnfit("the starting weights are no state_dict (tensors by name)")
    return data


def load_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load the tensors that fit `model`; the names of those left as initialised. Raises `WeightsUnfit` (a
    `ValueError`) when none fits (weights of another architecture)."""
    own = model.state_dict()
    fitting = {name: t for name, t in state.items() if name in own and own[name].shape == t.shape}
    # Scalars (BatchNorm's num_batches_tracked) fit any model: they do not make weights fit.
    if not any(tensor.dim() > 0 for tensor in fitting.values()):
        raise WeightsUnfit("none of the starting weights fits this model (weights of another architecture?)")
    model.load_state_dict(fitting, strict=False)
    kept = sorted(set(own) - set(fitting))
    if kept:
        log.info("starting weights loaded; left as initialised: %s", ", ".join(kept))
    return kept
