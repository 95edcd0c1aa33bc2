from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic import FiniteFloat as FiniteFloat  # NaN and ±inf refused: JSON and Postgres' jsonb hold neither
from pydantic_core import InitErrorDetails, PydanticCustomError


class Message(BaseModel):
    """Base of every NATS message. Unknown fields are ignored so that a newer producer (which may add optional
    fields within a version) never breaks an older consumer."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def absent(value: object) -> bool:
    """For `Field(exclude_if=absent)`: an optional field added within a version is left out of a message
    that does not use it, so the message serializes exactly as before the field existed."""
    return value is None


# Storable input: what enters the platform (a request, a callback, a command) must be something Postgres
# can commit, or its commit fails for good after the message was published (a NUL in a log line lost a real
# event that way). Refused where it enters, as a validation error naming the field (a 422), never later.


def text_problem(value: str) -> str | None:
    """Why Postgres text cannot hold `value`, or None when it can."""
    if "\x00" in value:
        return "text may not contain the NUL character (\\u0000)"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text may not contain a lone surrogate (it has no UTF-8 encoding)"
    return None


def storable_text(value: str) -> str:
    """`value`, when Postgres text can hold it: no NUL, no lone surrogate."""
    if (problem := text_problem(value)) is not None:
        raise PydanticCustomError("unstorable_text", problem)
    return value


def _tree_problems(value: Any, location: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        problem = text_problem(value)
        return [] if problem is None else [(location, problem)]
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(location, "must be a finite number (not NaN or ±infinity)")]
    found: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (problem := text_problem(key)) is not None:
                found.append(((*location, key), f"key: {problem}"))
            found += _tree_problems(item, (*location, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found += _tree_problems(item, (*location, index))
    return found


def storable_tree(value: Any) -> Any:
    """`value` (free-form JSON: hyperparameters, metrics), when every string in it is storable text and every
    number finite; otherwise one error per offending place, located inside the field (`metrics.loss`)."""
    found = _tree_problems(value, ())
    if found:
        raise ValidationError.from_exception_data(
            "storable",
            [
                InitErrorDetails(
                    type=PydanticCustomError("unstorable_value", "{message}", {"message": message}),
                    loc=location,
                    input=None,
                )
                for location, message in found
            ],
        )
    return value


StorableStr = Annotated[str, AfterValidator(storable_text)]
StorableJson = Annotated[dict[str, Any], AfterValidator(storable_tree)]
