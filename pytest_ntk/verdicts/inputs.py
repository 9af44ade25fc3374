"""What a claim may pass to the recorder, and how it becomes float64 -- or is refused by name.

Every measurement is judged in float64. A value is accepted only when float64 holds it
*exactly*: float16/32/64 arrays, jax's bfloat16 and the other ``ml_dtypes`` floats, integers up
to 2^53 in magnitude (larger ones only when they happen to be representable), and ``Decimal``,
``Fraction`` or ``longdouble`` values that are exact binary64 numbers. Anything that would be
silently rounded (a 64-bit integer near its range, ``Fraction(1, 3)``, ``Decimal("0.1")``, a
longdouble with more bits) is refused with the value and what it would round to, so that no
verdict is ever decided on a number the claim did not pass.

Also refused: booleans (a comparison's outcome, not a measurement), complex numbers, strings
(even ``"1.5"``), ``None``, ragged nested lists, masked arrays (their mask would be ignored:
pass ``values.compressed()`` or fill the masked entries explicitly) and empty arrays.
Non-finite numbers are not refused here: they become an ERROR measurement that shows them.
"""

from __future__ import annotations

import decimal
import fractions
import math
import numbers

import numpy as np

from .model import ClaimError

__all__ = ["as_float64", "as_name", "short"]

_EXACT_INT = 2**53


def short(value, limit: int = 120) -> str:
    """``repr(value)``, shortened in the middle when long (a message names the value, not all of it)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        sign = "-" if value < 0 else ""
        return f"an integer of {value.bit_length()} bits (about {sign}1e{value.bit_length() * math.log10(2):.0f})"
    try:
        r = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        r = f"<{type(value).__name__}>"
    return r if len(r) <= limit else f"{r[: limit - 40]} ... {r[-30:]}"


def as_name(value, what: str, where: str) -> str:
    """A label (measurement, stage, table): a non-empty string; an integer (numpy's too) becomes its digits."""
    if isinstance(value, str):
        if value:
            return value
    elif isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    raise ClaimError(f"{where}: {what} must be a non-empty string, got {short(value)}")


def _is_ml_dtype(dtype: np.dtype) -> bool:
    """jax's bfloat16, float8_* and int4 types come from ``ml_dtypes`` (numpy sees them as kind 'V')."""
    return getattr(dtype.type, "__module__", "").startswith("ml_dtypes")


def _refuse_inexact(where: str, what: str, value, rounded) -> None:
    raise ClaimError(
        f"{where}: {what} holds {short(value)}, which float64 cannot represent exactly (it would round to "
        f"{float(rounded)!r}); the verdict is judged in float64, so pass a float if that rounding is what "
        f"you mean, or rescale the quantity"
    )


def _exact_scalar(x, where: str, what: str, whole) -> float:
    """One element of an object array (or a scalar) as an exactly equal float, or ClaimError."""
    if isinstance(x, (bool, np.bool_)):
        raise ClaimError(f"{where}: {what} must be numeric, got the boolean {short(x)} in {short(whole)}")
    if isinstance(x, float) or (isinstance(x, np.floating) and np.dtype(type(x)).itemsize <= 8):
        return float(x)
    if isinstance(x, (int, np.integer)):
        try:
            f = float(x)
        except OverflowError:
            raise ClaimError(f"{where}: {what} holds {short(int(x))}, beyond float64's range; rescale the "
                             f"quantity") from None
        if abs(int(x)) > _EXACT_INT and int(f) != int(x):
            _refuse_inexact(where, what, x, f)
        return f
    if isinstance(x, np.floating):  # longdouble
        f = np.float64(x)
        if np.longdouble(f) != x and math.isfinite(f):
            _refuse_inexact(where, what, x, f)
        return float(f)
    if isinstance(x, decimal.Decimal):
        if x.is_nan() or x.is_infinite():
            return float("nan") if x.is_nan() else float(x)
        try:
            f = float(x)
        except (ValueError, OverflowError):
            raise ClaimError(f"{where}: {what} holds {short(x)}, which is not a number float64 can hold") from None
        if not math.isfinite(f) or decimal.Decimal(f) != x:
            _refuse_inexact(where, what, x, f)
        return f
    if isinstance(x, numbers.Rational):
        try:
            f = float(x)
        except OverflowError:
            raise ClaimError(f"{where}: {what} holds {short(x)}, beyond float64's range") from None
        if fractions.Fraction(f) != fractions.Fraction(x.numerator, x.denominator):
            _refuse_inexact(where, what, x, f)
        return f
    if isinstance(x, numbers.Real):
        try:
            f = float(x)
        except (TypeError, ValueError, OverflowError):
            raise ClaimError(f"{where}: {what} holds {short(x)}, which float64 cannot hold") from None
        if math.isfinite(f) and not (x == f):
            _refuse_inexact(where, what, x, f)
        return f
    if isinstance(x, (complex, np.complexfloating)):
        raise ClaimError(f"{where}: {what} must be numeric (real), got the complex {short(x)} in {short(whole)}")
    raise ClaimError(f"{where}: {what} must be numeric (real numbers), got {short(x)} in {short(whole)}")


def _bool_inside(seq):
    """The first boolean inside nested lists/tuples (or a boolean array among them), else None."""
    stack = [seq]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif isinstance(v, (bool, np.bool_)) or (isinstance(v, np.ndarray) and v.dtype.kind == "b"):
            return v
    return None


def as_float64(value, what: str, where: str) -> np.ndarray:
    """``value`` as a float64 array equal to it element by element, or :class:`ClaimError` (see the module doc).

    ``where`` names the claim and the measurement; ``what`` the argument (``"measured"``, ``"x"``...).
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise ClaimError(f"{where}: {what} must be numeric, got {short(value)}")
    if isinstance(value, np.ma.MaskedArray):
        raise ClaimError(f"{where}: {what} is a masked array; its mask would be ignored: pass the unmasked "
                         f"values (values.compressed()) or fill the masked entries explicitly")
    if isinstance(value, (list, tuple)):
        flag = _bool_inside(value)
        if flag is not None:  # numpy would read [True, 2.0] as [1.0, 2.0]
            raise ClaimError(f"{where}: {what} must be numeric, got the boolean {short(flag)} in {short(value)}")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError, OverflowError):  # e.g. ragged nested lists
        raise ClaimError(f"{where}: {what} must be numeric (a number or a rectangular array), got {short(value)}") from None
    if raw.size == 0:
        raise ClaimError(f"{where}: {what} is empty")
    kind = raw.dtype.kind
    if kind == "b":
        raise ClaimError(f"{where}: {what} must be numeric, got the boolean {short(value)} (record the quantity "
                         f"that was compared, not the comparison)")
    if kind == "c":
        raise ClaimError(f"{where}: {what} must be numeric (real), got the complex {short(value)}")
    if kind == "O":
        flat = [_exact_scalar(e, where, what, value) for e in raw.ravel()]
        return np.array(flat, dtype=np.float64).reshape(raw.shape)
    if kind == "V" and _is_ml_dtype(raw.dtype):
        return raw.astype(np.float64)  # bfloat16, float8, int4: every value is exact in float64
    if kind == "f":
        if raw.dtype.itemsize <= 8:
            return raw.astype(np.float64)
        with np.errstate(all="ignore"):
            arr = raw.astype(np.float64)
        bad = np.isfinite(raw) & (arr.astype(raw.dtype) != raw)
        if np.any(bad):
            i = int(np.flatnonzero(bad.ravel())[0])
            _refuse_inexact(where, what, raw.ravel()[i], arr.ravel()[i])
        return arr
    if kind in "iu":
        arr = raw.astype(np.float64)
        if raw.dtype.itemsize > 4:
            big = (raw > _EXACT_INT) | (raw < -_EXACT_INT) if kind == "i" else raw > _EXACT_INT
            for i in np.flatnonzero(big.ravel()):
                v, f = int(raw.ravel()[i]), arr.ravel()[i]
                if int(f) != v if math.isfinite(f) else True:
                    _refuse_inexact(where, what, v, f)
        return arr
    raise ClaimError(f"{where}: {what} must be numeric, got {short(value)} (dtype {raw.dtype})")
