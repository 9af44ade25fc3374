"""The activation functions a :class:`~pytest_ntk.science.nets.FullyConnected` network may use, by name.

Kept apart from :mod:`.nets` so that the empirical-kernel code can read them without importing
the network class (which imports it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["ACTIVATIONS"]

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "erf": jax.scipy.special.erf,
    "tanh": jnp.tanh,
    "identity": lambda z: z,
    # A polynomial: its NTK has finite rank on the sphere (the positive-definiteness claims' control).
    "square": lambda z: z * z,
}
