r"""Models as users write them: Flax (nnx and linen), Equinox and stax networks in the engine's protocol.

The engine -- :func:`~pytest_ntk.science.empirical.empirical_ntk` (and ``method="structured"``),
:func:`~pytest_ntk.science.train.train` and
:func:`~pytest_ntk.science.empirical.monte_carlo_kernels` -- speaks one small protocol: a model has

* ``init(key, in_dim, dtype) -> params``: a fresh draw of the parameters, a pytree of arrays
  (``in_dim`` an int, or the shape of one input row, e.g. ``(H, W, C)`` for images);
* ``apply(params, x) -> outputs``: the outputs of a batch ``x`` (rows on axis 0), shape ``(n,)``
  for one output or ``(n, K)``;
* ``describe() -> dict``: a JSON-ready description, for error messages and cache keys.

Each adapter here wraps one library's way of writing a network in that protocol, with nothing
but the library's own calls:

- :func:`from_nnx`: ``params`` is the model's ``nnx.Param`` state, ``nnx.split(model, nnx.Param, ...)``
  (other state, e.g. batch statistics, is held fixed); ``apply`` is ``nnx.merge(graphdef, params, rest)(x)``.
- :func:`from_linen`: ``params`` is the variables dict ``{"params": ...}`` that ``module.init`` returns;
  ``apply`` is ``module.apply(params, x)``.
- :func:`from_equinox`: ``params`` is ``eqx.filter(model, eqx.is_inexact_array)`` (``eqx.partition``'s
  first half); ``apply`` is ``jax.vmap(eqx.combine(params, static))(x)``.
- :func:`from_stax`: ``params`` is what the triple's ``init_fn`` returns; ``apply`` is its ``apply_fn(params, x)``.

**Fresh draws.** Linen modules and stax triples are descriptions: ``init`` draws with the library's
initialisers (``module.init(key, zeros)``, ``init_fn(key, (-1, *row))``). An nnx or Equinox model
is an instance that holds one set of weights; ``init`` redraws only when given ``make``, a function
``key -> model`` (``make=lambda key: MLP(..., rngs=nnx.Rngs(key))``). Without ``make`` the
adapter's ``init`` returns the instance's own weights whatever the key -- so every seed of
:func:`~pytest_ntk.science.train.train` starts there, as with ``train(params=...)`` -- and
:func:`~pytest_ntk.science.empirical.monte_carlo_kernels`, which needs a new draw per sample,
refuses it. ``adapter.params`` holds the instance's weights (``None`` for linen and stax).

**Outputs.** With ``squeeze=True`` (the default) an output axis of size one is dropped, ``(n, 1)
-> (n,)``, the convention of :class:`~pytest_ntk.science.nets.FullyConnected` (so ``y`` has shape
``(n,)``). Equinox layers act on one example (``batched=False``, the default, maps the model over
the rows with ``jax.vmap``); nnx and linen models take batches.

**Dispatch.** :func:`as_model` picks the adapter by type, and the engine's entry points call it, so
``empirical_ntk(nnx_model, None, x)``, ``empirical_ntk(linen_module, variables, x)``,
``empirical_ntk((init_fn, apply_fn, kernel_fn), params, x)`` and ``train(eqx_model, x, y, ...)``
work without wrapping. Each call then wraps anew, and an adapter compares equal only to itself
(it is a static argument of the compiled programs), so wrap once and pass the adapter to reuse
compilations across calls.

The libraries are optional (``pip install pytest-ntk[flax]``, ``[equinox]``; stax comes from
neural-tangents or ``jax.example_libraries``): nothing here imports them until an adapter is
built, and :func:`as_model` recognises their objects only when the library is already imported.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import re
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .errors import OptionalDependencyMissing

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

__all__ = ["Adapter", "EquinoxAdapter", "LinenAdapter", "NnxAdapter", "StaxAdapter", "as_apply", "as_model",
           "from_equinox", "from_linen", "from_nnx", "from_stax"]


# ============================================================================ helpers
def _library(name: str, extra: str):
    """Import an optional library, or raise :class:`OptionalDependencyMissing` saying how to get it."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a failure of the library itself on this jax
        raise OptionalDependencyMissing(
            f"{name} cannot be imported here ({type(exc).__name__}: {exc}); "
            f"install it with `pip install pytest-ntk[{extra}]`"
        ) from exc


def _row_shape(in_dim, default=None) -> tuple[int, ...]:
    """``in_dim`` (an int, or the shape of one input row) as a row shape."""
    if in_dim is None:
        if default is None:
            raise ValueError("in_dim is needed: the input dimension (an int) or the shape of one input row")
        return tuple(default)
    if isinstance(in_dim, (int, np.integer)) and not isinstance(in_dim, bool):
        if in_dim < 1:
            raise ValueError(f"in_dim must be >= 1, got {in_dim!r}")
        return (int(in_dim),)
    try:
        shape = tuple(int(s) for s in in_dim)
    except TypeError:
        raise ValueError(f"in_dim must be an int or a tuple of ints (one row's shape), got {in_dim!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"in_dim must be a non-empty shape of positive sizes, got {in_dim!r}")
    return shape


def _cast(tree, dtype):
    """Floating leaves of ``tree`` to ``dtype``; other leaves unchanged."""
    if dtype is None:
        return tree
    dtype = jnp.dtype(dtype)

    def cast(leaf):
        arr = jnp.asarray(leaf)
        return arr.astype(dtype) if jnp.issubdtype(arr.dtype, jnp.floating) else arr

    return jax.tree_util.tree_map(cast, tree)


def _shapes(tree) -> list:
    """``[[shape, dtype], ...]`` of a pytree's leaves, JSON-ready."""
    return [[list(np.shape(leaf)), str(np.dtype(getattr(leaf, "dtype", None) or np.asarray(leaf).dtype))]
            for leaf in jax.tree_util.tree_leaves(tree)]


def _weights_digest(tree) -> str:
    """SHA-256 of a pytree's leaves (shape, dtype and bytes of each, in order)."""
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(tree):
        arr = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.view(np.uint8).reshape(-1).tobytes())
    return h.hexdigest()


def _code_of(cls) -> str:
    """Digest of a class's forward pass (``__call__``; its ``setup`` for linen), for ``describe()``."""
    from .cache.keys import code_digest

    h = hashlib.sha256()
    for name in ("__call__", "setup"):
        fn = cls.__dict__.get(name) or getattr(cls, name, None)
        if fn is not None and hasattr(fn, "__code__"):
            h.update(code_digest(fn).encode())
    return h.hexdigest()


def _qualname(obj) -> str:
    t = obj if isinstance(obj, type) else type(obj)
    return f"{t.__module__}:{t.__qualname__}"


def _stable_repr(obj) -> str:
    """SHA-256 of ``repr(obj)`` without memory addresses (``<function f at 0x...>``)."""
    try:
        text = repr(obj)
    except Exception:  # noqa: BLE001 (a repr or a metadata lookup may fail any way)
        text = type(obj).__qualname__
    return hashlib.sha256(_ADDRESS.sub("", text).encode()).hexdigest()


def _feed_function(h, fn, depth: int = 0) -> None:
    """Code digest of ``fn`` and, recursively, of what its closure holds (stax closures hold the
    widths and scales; nested layers are functions again)."""
    from .cache.keys import code_digest

    h.update(f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', type(fn).__qualname__)}".encode())
    h.update(code_digest(fn).encode())
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        _feed_value(h, value, depth + 1)


def _feed_value(h, value, depth: int) -> None:
    if depth > 16:
        h.update(b"...")
    elif callable(value) and hasattr(value, "__code__"):
        _feed_function(h, value, depth)
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}[{len(value)}]".encode())
        for v in value:
            _feed_value(h, v, depth + 1)
    elif isinstance(value, (np.ndarray, jax.Array)):
        h.update(_weights_digest(value).encode())
    else:
        h.update(_ADDRESS.sub("", repr(value)).encode())


def _function(fn) -> str | None:
    """``module:qualname`` of a function and a digest of its code and its closure (``None`` for ``None``)."""
    if fn is None:
        return None
    h = hashlib.sha256()
    _feed_function(h, fn)
    name = f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', type(fn).__qualname__)}"
    return f"{name}@{h.hexdigest()[:32]}"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except Exception:  # noqa: BLE001 (a repr or a metadata lookup may fail any way)
        return None


def _made_params(make, key, module_type, type_name: str, extract, reference, what: str, classes, wrapped_classes):
    """The parameters (``extract(model)``) of ``model = make(key)``; ValueError unless ``model`` is a
    ``module_type`` whose module classes (``classes(model)``: ``(path, class)`` pairs) are exactly the
    wrapped model's (``wrapped_classes``; the same class objects) and whose parameters have the
    structure and shapes of ``reference``. Only the parameters are used: the adapter applies the
    wrapped model's own code and non-parameter parts."""
    model = make(key)
    if not isinstance(model, module_type):
        raise ValueError(  # noqa: TRY004 (house rule)
            f"{what}: make(key) must return an {type_name}, got {type(model).__name__}"
        )
    made = classes(model)
    if made != wrapped_classes:
        theirs, ours = dict(made), dict(wrapped_classes)
        order = [p for p, _ in wrapped_classes] + [p for p, _ in made if p not in ours]
        path = next(p for p in order if theirs.get(p) is not ours.get(p))
        got, cls = theirs.get(path), ours.get(path)
        where = "the model" if path == () else f"its submodule at {'/'.join(map(str, path))}"
        if got is not None and cls is not None and _qualname(got) == _qualname(cls):
            detail = (f"{where} is a different class object with the same name, {_qualname(cls)}: make defines "
                      "the class on each call; define it once, outside make")
        else:
            detail = (f"{where} is {_qualname(got) if got is not None else 'missing'} where the wrapped model "
                      f"has {_qualname(cls) if cls is not None else 'nothing'}")
        raise ValueError(f"{what}: make(key) must build the same architecture (only its parameters are used); {detail}")
    params = extract(model)
    _tree_matches(reference, params, what)
    return params


def _nnx_classes(model) -> list:
    """``(path, class)`` of every module in an nnx graph, in traversal order."""
    from flax import nnx

    return [(tuple(path), type(node)) for path, node in nnx.iter_graph(model) if isinstance(node, nnx.Module)]


def _tree_matches(reference, tree, what: str):
    """ValueError unless ``tree`` has the structure and leaf shapes of ``reference``."""
    ref_leaves, ref_def = jax.tree_util.tree_flatten(reference)
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    if [np.shape(a) for a in leaves] != [np.shape(a) for a in ref_leaves]:
        raise ValueError(
            f"{what}: the model built by make(key) has parameters {_shapes(tree)} but the wrapped model has "
            f"{_shapes(reference)}; make must build the same architecture"
        )
    if treedef != ref_def:
        raise ValueError(
            f"{what}: the model built by make(key) has the wrapped model's parameter shapes but another "
            f"structure (a submodule's class or a static field differs: {treedef} vs {ref_def}); make must "
            "build the same architecture"
        )


# ============================================================================ the protocol
class Adapter:
    """A model of some library in the engine's protocol: ``init``, ``apply``, ``describe``.

    Built by :func:`from_nnx`, :func:`from_linen`, :func:`from_equinox`, :func:`from_stax` (or
    :func:`as_model`). Calling the adapter is ``apply``, so it can also be passed where an
    ``apply_fn(params, x)`` is expected. Hashable and equal by identity (a static argument of the
    compiled programs).
    """

    library: str = ""
    #: The wrapped instance's own weights (nnx, Equinox), else None.
    params: Any = None
    #: Whether :meth:`init` draws new weights for each key.
    fresh_draws: bool = True

    def __init__(self, *, squeeze: bool = True, row_shape=None):
        if not isinstance(squeeze, bool):
            raise ValueError(f"squeeze must be True or False, got {squeeze!r}")  # noqa: TRY004 (house rule)
        self.squeeze = squeeze
        self.row_shape = None if row_shape is None else _row_shape(row_shape)

    # -- what each library fills in
    def _init(self, key, in_dim, dtype):
        raise NotImplementedError

    def _apply(self, params, x):
        raise NotImplementedError

    def _describe(self) -> dict[str, Any]:
        return {}

    # -- the protocol
    def init(self, key, in_dim=None, dtype=jnp.float32):
        """Parameters for ``key``: a pytree of arrays, floating leaves in ``dtype`` (see the module doc)."""
        return _cast(self._init(key, in_dim, dtype), dtype)

    def apply(self, params, x):
        """Outputs of the batch ``x``: ``(n, K)``, or ``(n,)`` when ``squeeze`` and ``K == 1``."""
        out = self._apply(params, x)
        if self.squeeze and getattr(out, "ndim", 0) == 2 and out.shape[1] == 1:
            out = out[:, 0]
        return out

    __call__ = apply

    def n_params(self, in_dim=None) -> int:
        """Number of parameters (leaf sizes summed) of one draw."""
        tree = jax.eval_shape(lambda k: self.init(k, in_dim), jax.random.PRNGKey(0))
        return int(sum(np.prod(leaf.shape, dtype=int) for leaf in jax.tree_util.tree_leaves(tree)))

    def describe(self) -> dict[str, Any]:
        """JSON-ready: the library and its version, the model's class and a digest of its forward
        code, the parameter shapes, a digest of the held weights. Code that the forward pass calls
        (helpers, submodules' classes) is not followed: key a cache entry on a version as well when
        that changes."""
        out = {"kind": "Adapter", "library": self.library, "squeeze": self.squeeze}
        if self.row_shape is not None:
            out["row_shape"] = list(self.row_shape)
        out.update(self._describe())
        return out

    def _name(self) -> str:
        return "?"

    def __repr__(self) -> str:  # cheap: no digests (it is formatted into messages)
        return f"<{type(self).__name__} of {self._name()}>"


# ============================================================================ flax nnx
class NnxAdapter(Adapter):
    """An ``nnx.Module`` (see :func:`from_nnx`)."""

    library = "flax.nnx"

    def __init__(self, model, make: Callable | None = None, *, squeeze: bool = True):
        super().__init__(squeeze=squeeze)
        nnx = _library("flax.nnx", "flax")
        if not isinstance(model, nnx.Module):
            raise ValueError(  # noqa: TRY004 (house rule)
                f"from_nnx: expected an nnx.Module (or make=), got {type(model).__name__}"
            )
        if make is not None and not callable(make):
            raise ValueError(f"from_nnx: make must be a function key -> nnx.Module, got {type(make).__name__}")
        self._nnx = nnx
        self.model_type = type(model)
        self.graphdef, self.params, self.rest = nnx.split(model, nnx.Param, ...)
        self._classes = _nnx_classes(model)
        self.make = make
        self.fresh_draws = make is not None

    def _init(self, key, in_dim, dtype):  # the instance fixes the input shape: in_dim is not needed
        if self.make is None:
            return self.params
        nnx = self._nnx
        return _made_params(self.make, key, nnx.Module, "nnx.Module", lambda m: nnx.state(m, nnx.Param),
                            self.params, "from_nnx", _nnx_classes, self._classes)

    def _apply(self, params, x):
        return self._nnx.merge(self.graphdef, params, self.rest)(x)

    def _name(self):
        return _qualname(self.model_type)

    def to_model(self, params):
        """The ``nnx.Module`` with these parameters (``nnx.merge``)."""
        return self._nnx.merge(self.graphdef, params, self.rest)

    def _describe(self):
        return {"model": _qualname(self.model_type), "version": _version("flax"), "code": _code_of(self.model_type),
                "graph": _stable_repr(self.graphdef), "params": _shapes(self.params),
                "weights": _weights_digest(self.params), "make": _function(self.make)}


def from_nnx(model=None, *, make: Callable | None = None, squeeze: bool = True) -> NnxAdapter:
    """A Flax ``nnx.Module`` in the engine's protocol.

    ``params`` is the model's ``nnx.Param`` state (``nnx.split(model, nnx.Param, ...)``); other
    state is held fixed. ``apply(params, x)`` is ``nnx.merge(graphdef, params, rest)(x)`` on the
    batch ``x``. ``make(key) -> nnx.Module`` builds the same architecture from a key, for fresh
    draws (``init``); instead of a model you may pass ``make`` alone (``from_nnx(make=...)`` builds
    the model with key 0). Only the ``nnx.Param`` state of ``make(key)``'s model is used: ``apply``
    runs the wrapped model's graph and other state, so ``make`` must build modules of the same
    classes (the same class objects, at every node of the graph: checked) with parameters of the
    same structure and shapes (checked); other attributes, such as an activation function or a
    number chosen by a constructor argument, are not compared.
    ``adapter.params`` are the wrapped model's weights.
    """
    if model is None:
        if make is None:
            raise ValueError("from_nnx: give a model, or make=(key -> nnx.Module)")
        model = make(jax.random.PRNGKey(0))
    return NnxAdapter(model, make, squeeze=squeeze)


# ============================================================================ flax linen
class LinenAdapter(Adapter):
    """A ``flax.linen.Module`` (see :func:`from_linen`)."""

    library = "flax.linen"

    def __init__(self, module, example_input=None, *, squeeze: bool = True):
        nn = _library("flax.linen", "flax")
        if not isinstance(module, nn.Module):
            raise ValueError(  # noqa: TRY004 (house rule)
                f"from_linen: expected a flax.linen.Module, got {type(module).__name__}"
            )
        row = None if example_input is None else tuple(np.shape(example_input))[1:]
        if example_input is not None and not row:
            raise ValueError(f"from_linen: example_input must be a batch (n, ...), got shape {np.shape(example_input)}")
        super().__init__(squeeze=squeeze, row_shape=row)
        self.module = module

    def _init(self, key, in_dim, dtype):
        row_shape = _row_shape(in_dim, self.row_shape)
        variables = self.module.init(key, jnp.zeros((1,) + row_shape, dtype))
        extra = sorted(set(variables) - {"params"})
        if extra:
            raise ValueError(f"from_linen: {type(self.module).__name__} has variable collections {extra} besides "
                             "'params'; only the 'params' collection is supported (no batch statistics)")
        return {"params": variables["params"]}

    def _apply(self, params, x):
        return self.module.apply(params, x)

    def _name(self):
        return _qualname(self.module)

    def _describe(self):
        module = self.module
        try:
            fields = repr(module)
        except Exception:  # noqa: BLE001 (a repr or a metadata lookup may fail any way)
            fields = type(module).__name__
        return {"model": _qualname(module), "version": _version("flax"), "code": _code_of(type(module)),
                "module": hashlib.sha256(_ADDRESS.sub("", fields).encode()).hexdigest()}


def from_linen(module, example_input=None, *, squeeze: bool = True) -> LinenAdapter:
    """A ``flax.linen.Module`` in the engine's protocol.

    ``params`` is the variables dict ``{"params": ...}`` that ``module.init`` returns (what you
    would pass to ``module.apply``); ``init(key, in_dim)`` is ``module.init(key, zeros((1,
    *row)))`` and ``apply(params, x)`` is ``module.apply(params, x)``. ``example_input``, a batch,
    only fixes the row shape used when ``init`` is given none. Modules with collections other
    than ``"params"`` (batch statistics) are not supported.
    """
    return LinenAdapter(module, example_input, squeeze=squeeze)


# ============================================================================ equinox
class EquinoxAdapter(Adapter):
    """An ``equinox.Module`` (see :func:`from_equinox`)."""

    library = "equinox"

    def __init__(self, model, make: Callable | None = None, *, batched: bool = False, squeeze: bool = True):
        super().__init__(squeeze=squeeze)
        eqx = _library("equinox", "equinox")
        if not isinstance(model, eqx.Module):
            raise ValueError(  # noqa: TRY004 (house rule)
                f"from_equinox: expected an equinox.Module (or make=), got {type(model).__name__}"
            )
        if make is not None and not callable(make):
            raise ValueError(f"from_equinox: make must be a function key -> equinox.Module, got {type(make).__name__}")
        if not isinstance(batched, bool):
            raise ValueError(  # noqa: TRY004 (house rule)
                f"from_equinox: batched must be True or False, got {batched!r}"
            )
        self._eqx = eqx
        self.model_type = type(model)
        self.params, self.static = eqx.partition(model, eqx.is_inexact_array)
        self.make = make
        self.batched = batched
        self.fresh_draws = make is not None

    def _init(self, key, in_dim, dtype):  # the instance fixes the input shape: in_dim is not needed
        if self.make is None:
            return self.params
        eqx = self._eqx
        # the tree structure compared with the parameters carries every submodule's class and static field
        return _made_params(self.make, key, eqx.Module, "equinox.Module",
                            lambda m: eqx.filter(m, eqx.is_inexact_array), self.params, "from_equinox",
                            lambda m: [((), type(m))], [((), self.model_type)])

    def _apply(self, params, x):
        model = self._eqx.combine(params, self.static)
        return model(x) if self.batched else jax.vmap(model)(x)

    def _name(self):
        return _qualname(self.model_type)

    def to_model(self, params):
        """The ``equinox.Module`` with these parameters (``eqx.combine``)."""
        return self._eqx.combine(params, self.static)

    def _describe(self):
        return {"model": _qualname(self.model_type), "version": _version("equinox"),
                "code": _code_of(self.model_type), "static": _stable_repr(self.static), "batched": self.batched,
                "params": _shapes(self.params), "weights": _weights_digest(self.params),
                "make": _function(self.make)}


def from_equinox(
    model=None, *, make: Callable | None = None, batched: bool = False, squeeze: bool = True
) -> EquinoxAdapter:
    """An ``equinox.Module`` in the engine's protocol.

    ``params`` is ``eqx.filter(model, eqx.is_inexact_array)`` (the floating arrays; the rest, with
    the structure, is the static part of ``eqx.partition``); ``apply(params, x)`` maps
    ``eqx.combine(params, static)`` over the rows of ``x`` with ``jax.vmap`` (Equinox layers take
    one example), or calls it on the batch when ``batched=True``. ``make(key) -> equinox.Module``
    builds the same architecture from a key, for fresh draws; instead of a model you may pass
    ``make`` alone (the model is then built with key 0). Only the floating arrays of ``make(key)``'s
    model are used: ``apply`` runs the wrapped model's static part, so ``make`` must build the same
    pytree (checked: the classes of the model and its submodules, fields declared static, and the
    arrays' shapes); non-array values in ordinary fields, such as an activation function or a
    Python number, are not compared.
    """
    if model is None:
        if make is None:
            raise ValueError("from_equinox: give a model, or make=(key -> equinox.Module)")
        model = make(jax.random.PRNGKey(0))
    return EquinoxAdapter(model, make, batched=batched, squeeze=squeeze)


# ============================================================================ stax
class StaxAdapter(Adapter):
    """A stax ``(init_fn, apply_fn[, kernel_fn])`` (see :func:`from_stax`)."""

    library = "stax"

    def __init__(self, layer, in_shape=None, *, squeeze: bool = True):
        if not (isinstance(layer, (tuple, list)) and len(layer) in (2, 3) and all(callable(f) for f in layer)):
            raise ValueError("from_stax: expected a stax layer (init_fn, apply_fn) or (init_fn, apply_fn, kernel_fn), "
                             f"got {type(layer).__name__}")
        row = None
        if in_shape is not None:
            shape = tuple(in_shape) if not isinstance(in_shape, (int, np.integer)) else (-1, int(in_shape))
            if len(shape) < 2:
                raise ValueError(f"from_stax: in_shape is stax's input shape with a batch axis, e.g. (-1, d); "
                                 f"got {in_shape!r}")
            row = shape[1:]
        super().__init__(squeeze=squeeze, row_shape=row)
        self.init_fn, self.apply_fn = layer[0], layer[1]
        self.kernel_fn = layer[2] if len(layer) == 3 else None

    def _init(self, key, in_dim, dtype):
        _, params = self.init_fn(key, (-1,) + _row_shape(in_dim, self.row_shape))
        return params

    def _apply(self, params, x):
        return self.apply_fn(params, x)

    def _name(self):
        fn = self.apply_fn
        return f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', type(fn).__qualname__)}"

    def _describe(self):
        return {"model": _function(self.apply_fn), "init": _function(self.init_fn)}


def from_stax(layer, in_shape=None, *, squeeze: bool = True) -> StaxAdapter:
    """A stax network -- neural-tangents' ``(init_fn, apply_fn, kernel_fn)`` or
    ``jax.example_libraries.stax``'s ``(init_fn, apply_fn)`` -- in the engine's protocol.

    Only ``init_fn`` and ``apply_fn`` are used (``kernel_fn``, the infinite-width kernel, is kept as
    ``adapter.kernel_fn``): ``init(key, in_dim)`` is ``init_fn(key, (-1, *row))[1]`` and
    ``apply(params, x)`` is ``apply_fn(params, x)``. ``in_shape`` is stax's input shape with its
    batch axis, ``(-1, d)`` (or ``(-1, H, W, C)``); it fixes the row shape when ``init`` gets none.
    Nothing here imports neural-tangents.
    """
    return StaxAdapter(layer, in_shape, squeeze=squeeze)


# ============================================================================ dispatch
def _kind(obj) -> str | None:
    """Which adapter fits ``obj``: looked up only in libraries that are already imported."""
    if isinstance(obj, Adapter):
        return "adapter"
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(obj, nnx.Module):
        return "nnx"
    linen = sys.modules.get("flax.linen")
    if linen is not None and isinstance(obj, linen.Module):
        return "linen"
    eqx = sys.modules.get("equinox")
    if eqx is not None and isinstance(obj, eqx.Module):
        return "equinox"
    if isinstance(obj, tuple) and len(obj) in (2, 3) and all(callable(f) for f in obj):
        return "stax"
    return None


_BUILD = {"nnx": from_nnx, "linen": from_linen, "equinox": from_equinox, "stax": from_stax}


def as_model(obj, *, strict: bool = True):
    """``obj`` in the engine's protocol.

    An :class:`Adapter`, or anything that already has ``init`` and ``apply`` (a
    :class:`~pytest_ntk.science.nets.FullyConnected`, a :class:`~pytest_ntk.science.conv.ConvNet`,
    the wrappers of :mod:`~pytest_ntk.science.models`), is returned as it is; an ``nnx.Module``, a
    ``flax.linen.Module``, an ``equinox.Module`` or a stax tuple ``(init_fn, apply_fn[, kernel_fn])``
    is wrapped with :func:`from_nnx`, :func:`from_linen`, :func:`from_equinox` or :func:`from_stax`
    and default settings. Anything else raises ValueError naming its type -- or, with
    ``strict=False`` (how the engine's entry points call it), is returned unchanged, so that their
    own checks answer as before.
    """
    kind = _kind(obj)
    if kind == "adapter":
        return obj
    if kind is not None:
        return _BUILD[kind](obj)
    if callable(getattr(obj, "init", None)) and callable(getattr(obj, "apply", None)):
        return obj
    if not strict:
        return obj
    raise ValueError(
        f"as_model: cannot use a {type(obj).__module__}.{type(obj).__qualname__} as a model; expected an "
        "nnx.Module, a flax.linen.Module, an equinox.Module, a stax (init_fn, apply_fn[, kernel_fn]) tuple, "
        "or an object with init(key, in_dim, dtype) and apply(params, x)"
    )


def as_apply(apply_fn, params):
    """``(apply_fn, params)`` for :func:`~pytest_ntk.science.empirical.empirical_ntk`.

    A library model or an :class:`Adapter` in place of ``apply_fn`` becomes its ``apply``, and
    ``params=None`` the model's own weights (nnx and Equinox instances; linen modules and stax
    layers hold none, so ``params`` must be given). Anything else is returned unchanged.
    """
    kind = _kind(apply_fn)
    if kind is None:
        return apply_fn, params
    model = as_model(apply_fn)
    if params is None:
        params = model.params
        if params is None:
            raise ValueError(f"params=None: a {model.library} model holds no weights; pass params "
                             "(e.g. module.init(key, x) for linen, init_fn(key, shape)[1] for stax)")
    return model.apply, params
