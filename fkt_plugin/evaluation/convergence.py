"""Whether a run ended while its validation accuracy was still rising: its schedule was too short
for it. Fine-tunings of a few dozen optimiser steps (a short epoch count on a small labelled
set) end so, and their test accuracy then says more about the schedule than the features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

RISE_MARGIN = 0.01
"""Validation accuracy (a fraction) that the last validation must gain over the one at three
quarters of the run for the run to count as still rising: a point, above the epoch-to-epoch
noise of a converged run on a few hundred validation images."""


class StillRising(TypedDict):
    """The two validations that show the rise, as written to ``results.json``."""

    step: int
    val_acc1: float
    earlier_step: int
    earlier_val_acc1: float


def still_rising(curve: Sequence[tuple[int, float]],
                 margin: float = RISE_MARGIN) -> StillRising | None:
    """The rise at the end of a validation curve, or None where there is none.

    A run is still rising when its last validation is its best (ties included) and gained at
    least ``margin`` over the validation nearest to three quarters of its optimiser steps.

    Args:
        curve: ``(optimiser step, validation accuracy)`` in training order, at least one point.
        margin: The gain that counts as a rise (:data:`RISE_MARGIN`).

    Returns:
        The last and the earlier point, or None (also for a curve of one validation).
    """
    if len(curve) < 2:
        return None
    step, last = curve[-1]
    if last < max(value for _, value in curve):
        return None
    earlier_step, earlier = min(curve[:-1], key=lambda point: abs(point[0] - 0.75 * step))
    if last - earlier < margin:
        return None
    return {"step": step, "val_acc1": last, "earlier_step": earlier_step,
            "earlier_val_acc1": earlier}
