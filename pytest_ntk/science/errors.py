"""Errors raised by the science layer. Pure Python, so every layer may import them.

Each message names the offending value and what was expected; the plugin turns any of them
into an ERROR verdict for the claim that raised it (never a HOLDS).
"""

from __future__ import annotations

__all__ = [
    "NTKError",
    "NumericalError",
    "TrainingDiverged",
    "IllConditionedKernel",
    "IllConditionedKernelWarning",
    "OptionalDependencyMissing",
    "OracleUnavailable",
]


class NTKError(Exception):
    """Base class of pytest-ntk's own errors."""


class NumericalError(NTKError, ArithmeticError):
    """A computation produced a non-finite or meaningless number."""


class TrainingDiverged(NumericalError):
    """Training produced a non-finite loss.

    Attributes ``step``, ``lr``, ``seed`` and ``loss`` say where, so the message can name them.
    """

    def __init__(self, step: int, lr: float, seed, loss: float, detail: str = ""):
        self.step, self.lr, self.seed, self.loss = int(step), float(lr), seed, float(loss)
        msg = (
            f"training diverged: loss became {loss!r} at step {step} "
            f"(learning rate {lr:.6g}, seed {seed})"
        )
        if detail:
            msg += f"; {detail}"
        super().__init__(msg)


class IllConditionedKernel(NumericalError):
    """A kernel matrix is singular or too ill-conditioned to solve with in float64."""

    def __init__(self, condition_number: float, threshold: float, what: str = "kernel matrix"):
        self.condition_number, self.threshold = float(condition_number), float(threshold)
        super().__init__(
            f"{what} is ill-conditioned: condition number {condition_number:.3e} exceeds "
            f"{threshold:.1e}; pass ridge=... (a multiple of the identity added to the matrix) "
            f"or raise the threshold (max_condition=...)"
        )


class IllConditionedKernelWarning(RuntimeWarning):
    """A kernel solve went through, but its condition number means digits were lost."""


class OptionalDependencyMissing(NTKError, ImportError):
    """An optional library a computation needs cannot be imported here (absent, or broken by the
    installed jax). A claim that raises it is SKIPPED with the reason, not judged."""


class OracleUnavailable(OptionalDependencyMissing):
    """neural-tangents (the independent oracle, :mod:`pytest_ntk.science.oracle`) cannot be imported here."""
