"""Readable numbers for reports: significant digits, not seventeen."""

from __future__ import annotations

import math

__all__ = ["num", "interval"]


def num(x, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits; '' for None, 'nan'/'inf' spelled out."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return str(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def interval(ci, digits: int = 3) -> str:
    """``[lo, hi]`` or '' when there is no interval."""
    if not ci:
        return ""
    lo, hi = ci
    return f"[{num(lo, digits)}, {num(hi, digits)}]"
