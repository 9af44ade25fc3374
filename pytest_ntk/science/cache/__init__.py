r"""A content-addressed cache of trained networks, loss curves and kernels.

A cached value is found by the SHA-256 digest of a *key*: a JSON-ready description of everything
that determines the value (the network's ``describe()``, the data spec and seed, the training
settings, the profile, ...). The cache adds what the caller cannot see to the hashed payload --
the entry's ``name``, the versions of pytest-ntk, jax, jaxlib, numpy and scipy, a digest of
pytest-ntk's science-layer source, the installed accelerator plugins of jax, the machine
architecture and the environment variables that change JAX's numerics (:func:`environment`) --
so an upgrade, an edit of the science code or a move to a GPU never returns a stale value::

    digest = sha256( canonical_json({"format", "name", "key": key, "environment": environment()}) )

Three layers answer :meth:`Cache.get_or_compute`:

1. **memory** -- within one process the same digest returns the values already loaded or
   computed, without touching the disk (claims that share a trained network reuse it);
2. **disk** -- ``<directory>/<name>/<digest>.npz``: the arrays of the value plus a JSON manifest
   of its structure and a SHA-256 checksum of both (written to a temporary file in the same
   directory and moved into place with :func:`os.replace`, so no reader ever sees half an entry);
   a truncated, bit-flipped or undecodable entry is reported as a :class:`CacheCorruptWarning`,
   deleted and recomputed;
3. **compute** -- under a per-entry :class:`filelock.FileLock`, looking again after the lock is
   acquired, so concurrent processes (pytest-xdist workers) compute an entry once: the others wait
   and then read it.

What a value may be (the pytree is rebuilt with the same containers on every path, so a warm run
sees exactly what a cold run saw; arrays compare bitwise equal):

- ``numpy.ndarray`` and array-likes with ``__array__``, ``shape`` and ``dtype`` (JAX arrays):
  returned as **read-only** ``numpy.ndarray`` of the same dtype and shape (copy before mutating;
  one array may be shared by several claims). Object and structured dtypes are refused.
- numpy scalars (``np.float32(1.5)``: returned with their dtype), ``None``, ``bool``, ``int``,
  ``float`` (bit-exact, NaN and signed zeros included), ``complex``, ``str``, ``bytes``;
- ``list``, ``tuple``, ``dict`` (any mapping, returned as ``dict``; keys are scalars, strings or
  tuples of them), named tuples and dataclass instances whose class can be imported by
  ``module:qualname`` (not classes defined inside functions).

Nothing is pickled: an entry is an ``.npz`` read with ``allow_pickle=False`` plus JSON, so opening
a cache directory never runs code from it (restoring a dataclass imports its module by name).
The cache is pure Python and numpy: it imports neither pytest nor jax. Its modules: :mod:`.keys`
(canonical keys, the environment, code stamps), :mod:`.values` (values without pickle) and
:mod:`.store` (:class:`Cache`: memory, disk, locks).
"""

from __future__ import annotations

from .keys import (
    FORMAT,
    CacheCorruptWarning,
    CacheWarning,
    canonical_json,
    code_digest,
    environment,
    key_digest,
)
from .store import Cache, clear_entries

__all__ = [
    "Cache",
    "CacheWarning",
    "CacheCorruptWarning",
    "canonical_json",
    "code_digest",
    "key_digest",
    "environment",
    "clear_entries",
    "FORMAT",
]
