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
}
