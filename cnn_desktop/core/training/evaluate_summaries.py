"""The optional parts of an evaluation report: the unknown detector's rate and what
test-time augmentation changed, as JSON blocks and as one table line each."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnn_desktop.core.inference.tta import VIEW_NAMES

_DECIMALS = 6


def unknown_line(unknown: dict[str, Any], count: int) -> str:
    known = unknown["accuracy_of_known"]
    rest = f"; accuracy of the others {known:.2%}" if known is not None else ""
    return f"Unknown (none of these): {unknown['rate']:.2%} ({unknown['images']} of {count}){rest}"


def unknown_summary(flags: Sequence[bool], correct: Sequence[bool]) -> dict[str, Any]:
    """``{"images", "rate", "accuracy_of_known"}`` of the unknown verdicts ``flags`` and
    whether each top prediction was right (``correct``)."""
    flags_array = np.asarray(flags, bool)
    kept = ~flags_array
    right = np.asarray(correct, bool)
    return {
        "images": int(flags_array.sum()),
        "rate": round(float(flags_array.mean()), _DECIMALS) if flags_array.size else 0.0,
        "accuracy_of_known": round(float(right[kept].mean()), _DECIMALS) if kept.any() else None,
    }


def tta_line(tta: dict[str, Any]) -> str:
    change = (tta["accuracy"] - tta["accuracy_without_tta"]) * 100
    return (
        f"Test-time augmentation ({len(tta['views'])} views averaged): "
        f"{tta['accuracy_without_tta']:.2%} without it, {change:+.2f} points with it "
        f"(predictions fixed: {tta['fixed']}, broken: {tta['broke']})"
    )


def tta_summary(
    outcomes: list[tuple[Path, int, int, float]], without_tta: list[int], accuracy: float
) -> dict[str, Any]:
    """What test-time augmentation changed, on the same images."""
    right_with = [true == predicted for _, true, predicted, _ in outcomes]
    right_without = [
        true == plain for (_, true, _, _), plain in zip(outcomes, without_tta, strict=True)
    ]
    pairs = list(zip(right_with, right_without, strict=True))
    return {
        "views": list(VIEW_NAMES),
        "accuracy": round(accuracy, _DECIMALS),
        "accuracy_without_tta": round(sum(right_without) / max(1, len(outcomes)), _DECIMALS),
        "fixed": sum(1 for w, wo in pairs if w and not wo),
        "broke": sum(1 for w, wo in pairs if wo and not w),
    }
