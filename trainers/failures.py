"""Whether another attempt could help a failed one: `classify(exc, framework)` -> `Failure`.

A failure the job's own inputs cause fails the same way on every attempt: a spec or model name the framework
refuses, a dataset that cannot be read or does not fit the task, weights or a checkpoint that do not fit the
model, CUDA out of memory at the job's batch size. Such a failure is reported `retryable: false` and the job
fails at once, with the reason (and a hint where one helps), instead of spending its attempts on it.

Everything else stays retryable: a crash, a network or storage error, a lost node, and any exception not
listed here. Being wrong that way costs some minutes of retries; being wrong the other way costs the job.

Framework errors are recognised by their type's name, message and where they were raised, so nothing here
imports torch, timm or Ultralytics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainers.validation.errors import ArchiveRefused


class WillRecur(Exception):
    """Raised by a trainer for a failure its job's inputs cause: another attempt would fail the same way.
    `hint` says what to change, when something can be said."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# ValueError too, as what they replace was: callers that catch ValueError still do.
class SpecRefused(WillRecur, ValueError):
    """The framework refuses the job's spec: an unknown model, an argument it does not take."""


class DatasetUnfit(WillRecur, ValueError):
    """The dataset cannot be read, or does not fit the job's task."""


class WeightsUnfit(WillRecur, ValueError):
    """The starting weights (or a checkpoint) are unreadable or do not fit the model."""


@dataclass(frozen=True)
class Failure:
    """How a failed attempt is reported: `reason` names the error's class and message."""

    reason: str
    retryable: bool = True


# The batch-size hyperparameter of each framework, for the hint on running out of GPU memory.
BATCH_FIELDS = {"timm": "hyperparameters.batch_size", "ultralytics": "hyperparameters.batch"}


@dataclass(frozen=True)
class Rule:
    """A failure that will recur: what it is (for readers), how to recognise it, what to suggest."""

    what: str
    matches: Callable[[BaseException], bool]
    hint: str | None = None  # `{batch}`: the framework's batch-size field


def _cuda_out_of_memory(exc: BaseException) -> bool:
    # torch.OutOfMemoryError (torch.cuda.OutOfMemoryError is the same class); older paths raise a plain
    # RuntimeError with the allocator's message.
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    message = str(exc)
    return isinstance(exc, RuntimeError) and (
        "CUDA out of memory" in message or "CUDA error: out of memory" in message
    )


def _raised_in(exc: BaseException) -> str:
    """Where `exc` was raised: `module.function` of its traceback's innermost frame ('' without one)."""
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_globals.get('__name__', '')}.{tb.tb_frame.f_code.co_name}"


# Ultralytics' checks of its train arguments (unknown names; types and ranges of values).
_ULTRALYTICS_CFG_CHECKS = ("ultralytics.cfg.check_dict_alignment", "ultralytics.cfg.check_cfg")


RULES: tuple[Rule, ...] = (
    Rule(
        "a trainer's own verdict (SpecRefused, DatasetUnfit, WeightsUnfit)",
        lambda e: isinstance(e, WillRecur),
    ),
    Rule("CUDA out of memory", _cuda_out_of_memory, "lower batch ({batch})"),
    Rule(
        "timm does not know the model name",
        lambda e: isinstance(e, RuntimeError) and str(e).startswith("Unknown model ("),
        "use a model name timm knows (timm.list_models())",
    ),
    Rule(
        "weights or a checkpoint that do not fit the model (torch's load_state_dict: size mismatch, keys)",
        lambda e: isinstance(e, RuntimeError) and "Error(s) in loading state_dict" in str(e),
    ),
    Rule("the dataset archive is refused or unreadable", lambda e: isinstance(e, ArchiveRefused)),
    Rule(
        "an image of the dataset cannot be read (PIL)",
        lambda e: type(e).__name__ == "UnidentifiedImageError",
    ),
    Rule(
        "Ultralytics refuses a train argument (its cfg checks)",
        lambda e: (
            isinstance(e, SyntaxError | TypeError | ValueError) and _raised_in(e) in _ULTRALYTICS_CFG_CHECKS
        ),
    ),
    Rule(
        "Ultralytics refuses the dataset (its trainer's dataset checks)",
        lambda e: (
            isinstance(e, RuntimeError)
            and str(e).startswith("Dataset '")
            and "' error " in str(e)
            and _raised_in(e).startswith("ultralytics.engine.trainer.")
        ),
    ),
)


def classify(exc: BaseException, framework: str = "") -> Failure:
    """The failure `exc` makes of an attempt: retryable unless a rule says it will recur."""
    reason = f"{type(exc).__name__}: {str(exc).strip()}"
    for rule in RULES:
        if rule.matches(exc):
            if isinstance(exc, WillRecur):
                hint = exc.hint
            else:
                hint = rule.hint and rule.hint.format(batch=BATCH_FIELDS.get(framework, "the batch size"))
            if hint:
                reason = f"{reason}; {hint}"
            return Failure(reason, retryable=False)
    return Failure(reason)
