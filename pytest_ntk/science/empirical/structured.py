r"""The structured empirical NTK of any JAX model, read off its traced program.

For ``f(theta, x)`` with ``K`` outputs, :math:`\Theta(x, x') = \sum_{\text{leaves}} J_W(x) J_W(x')^\top`.
Most leaves of a network enter its program in one product, and there the Jacobian factorises:

**Dense products.** If a leaf enters only as an operand of ``z = dot_general(h, W)`` (after views:
reshape, transpose, dtype conversion, multiplication by a constant scalar ``c``), then with the
feature (contracting) axes ``i``, the output axes ``o``, shared batch axes ``G`` (e.g. heads) and the
other free axes of ``h`` as positions ``s`` (the example's own size-1 batch axis, sequence positions),
:math:`\partial f_a/\partial W_{G i o} = c \sum_s h_{G s i}\, g_{a, G s o}` with
:math:`g_a = \partial f_a / \partial z` the back-propagated signal at the product's output. So

.. math::  \Theta^W_{ab}(x, x') = c^2 \sum_G \sum_{s, t}
           \langle h_{Gs}(x), h_{Gt}(x')\rangle\, \langle g_{a,Gs}(x), g_{b,Gt}(x')\rangle,

a Gram matrix of layer inputs times a Gram matrix of signals (``"gram"`` strategy), or the
per-example gradient :math:`c\sum_s h_s \otimes g_{a,s}` formed as a kernel-sized tensor and
contracted (``"gradient"`` strategy), whichever costs fewer flops (:func:`_strategy_flops`):

* gram:     :math:`2 n_1 n_2 G S^2 (F + K' O)`,
* gradient: :math:`2 (n_1 + n_2) K G S F O + 2 n_1 n_2 K' G F O`,

with ``F`` fan-in, ``O`` fan-out, ``S`` positions, ``K' = K`` (``outputs="mean"``) or ``K^2``
(``"full"``). A fully-connected layer (``S = 1``) takes the Grams; a convolution over ``S = H W``
output positions takes the gradients, since :math:`S^2` pairs of positions share the weights.

**Convolutions** (``conv_general_dilated`` with the leaf as the kernel, no feature or batch groups)
are dense products of the image patches with the kernel: ``h`` is the patch at each output position
(extracted by padding and strided slicing, pure data movement) and ``g`` the signal there.

**Biases and other linear uses.** A leaf broadcast over positions (``broadcast_in_dim``), added,
subtracted or multiplied elementwise (layer-norm scales and offsets) is linear in the leaf:
its per-example gradient is the transpose of that one operation applied to the signal at its output
(for a bias, the signal summed over positions), ``K |leaf|`` numbers per example. A bias added straight
to a dense or convolutional output (``z = c_W h W + c_b b``) shares that output's signal, so it is
folded into the product's term as :math:`\langle h, h'\rangle \to \langle h, h'\rangle + c_b^2`
(the fully-connected formula of :mod:`pytest_ntk.science.empirical.fc`), or into its gradient.

**Fallback.** Every other leaf -- used twice, in a gather, in a loop, in an elementwise non-linear
op, returned as an output -- gets its exact per-example Jacobian (``vmap(jacrev)``, as the generic
path), contracted. The sum is exact either way: the structured terms are regroupings of
:math:`\sum_p \partial_p f_a(x)\,\partial_p f_b(x')`, never approximations.

**How h and g are found** without touching the user's model: ``apply_fn`` is traced on one example
(``jax.make_jaxpr``), nested ``jit`` calls are inlined, and each leaf is followed through views to its
uses. A small interpreter then evaluates that program, recording the other operand ``h`` of each
recognised product and adding a zero *probe* to its output; ``g`` is the Jacobian of the outputs with
respect to the probes, taken per example (``vmap`` over rows of ``jacrev`` with respect to the probes
and the fallback leaves together, so one backward pass serves both). Recognised weights are constants
of that pass: their per-example gradients are never formed unless the gradient strategy asks for it.

**Memory.** Rows are taken in blocks (at most ``batch_size``), halved until the stored features of
two blocks, the transient work of the rows computed at once and the position-pair Grams of a block
pair fit ``memory_budget``; features of every ``x2`` block are kept when they fit, else recomputed
per pair. The transient work (activations, cotangents, convolution patches: for a convolutional net
many times the stored features) is bounded separately: within a block, features are computed a few
rows at a time (one compiled call per chunk, written in place into the block's buffer), as many as
fit an eighth of ``memory_budget`` by the estimate from the traced program (at least one row). The
``(n, P)`` Jacobian exists only for fallback and gradient-strategy leaves.

**Limits.** Recognised: ``dot_general`` (either operand, any batch/contracting axes), convolutions
without feature or batch groups, and the linear uses above, after ``jit``-inlining. Not recognised
(exact fallback): grouped/depthwise convolutions, gathers (embedding lookups), leaves inside loops
(``scan``, ``while``), ``custom_jvp``/``custom_vjp`` functions or ``checkpoint``, and any leaf used
twice (tied weights).

:func:`structured_plan` (or ``return_plan=True``) reports, leaf by leaf, what was recognised, the
strategy and its estimated flops, and why a leaf fell back -- the place to look when a model is slow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._analysis import LeafPlan, StructuredPlan, _analyse, _Analysed, _Item, _plan
from ._common import (
    MEMORY_BUDGET,
    _cast_tree,
    _check_batch_size,
    _check_outputs,
    _finite,
    _pad_rows,
    _place,
    _precision,
    _resolve_dtype,
    _symmetrize,
)
from ._engine import _Engine, _row_bytes, _rows

__all__ = ["STRATEGIES", "STRUCTURED_BATCH_SIZE", "LeafPlan", "StructuredPlan", "structured_ntk", "structured_plan"]

STRATEGIES = ("auto", "gram", "gradient")
#: Most rows per block of :func:`structured_ntk` (the memory rule may take fewer).
STRUCTURED_BATCH_SIZE = 1024


# ============================================================================ caches
@functools.lru_cache(maxsize=32)
def _analysed(apply_fn, treedef, avals, row_shape, dtype_name):
    dtype = np.dtype(dtype_name)
    params = jax.tree_util.tree_unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in avals])
    return _analyse(apply_fn, params, row_shape, dtype)


@functools.lru_cache(maxsize=32)
def _engine(apply_fn, treedef, avals, row_shape, dtype_name, outputs, strategies):
    an = _analysed(apply_fn, treedef, avals, row_shape, dtype_name)
    an = _Analysed(**{**an.__dict__, "items": [_Item(**{**it.__dict__, "folds": list(it.folds)}) for it in an.items]})
    for item, strategy in zip(an.items, strategies):
        item.strategy = strategy
    return _Engine(an, outputs, np.dtype(dtype_name))


# ============================================================================ public API
def _check_inputs(x1, x2):
    x1 = np.asarray(x1)
    if x1.ndim < 1 or x1.shape[0] < 1:
        raise ValueError(f"x1 must be a batch with at least one row, got shape {x1.shape}")
    if not np.issubdtype(x1.dtype, np.number):
        raise ValueError(f"x1 must be numeric, got dtype {x1.dtype}")
    if x2 is not None:
        x2 = np.asarray(x2)
        if x2.ndim != x1.ndim or x2.shape[1:] != x1.shape[1:] or x2.shape[0] < 1:
            raise ValueError(f"x2 must have the row shape of x1 {x1.shape[1:]}, got shape {x2.shape}")
        if not np.issubdtype(x2.dtype, np.number):
            raise ValueError(f"x2 must be numeric, got dtype {x2.dtype}")
    return x1, x2


def _prepare(apply_fn, params, x1, x2, dtype, outputs):
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable, got {apply_fn!r}")  # noqa: TRY004 (house rule)
    try:
        hash(apply_fn)
    except TypeError:
        raise ValueError(f"apply_fn must be hashable (a function or bound method), got {apply_fn!r}") from None
    outputs = _check_outputs(outputs)
    x1, x2 = _check_inputs(x1, x2)
    dtype = _resolve_dtype(dtype, params)
    return x1, x2, dtype, outputs


def _key(apply_fn, p, row_shape, dtype):
    leaves, treedef = jax.tree_util.tree_flatten(p)
    avals = tuple((tuple(np.shape(leaf)), jnp.asarray(leaf).dtype) for leaf in leaves)
    return (apply_fn, treedef, avals, tuple(row_shape), np.dtype(dtype).name)


def structured_plan(
    apply_fn: Callable, params, x1, x2=None, *, dtype=None, outputs: str = "mean", strategy: str = "auto"
) -> StructuredPlan:
    """What :func:`structured_ntk` would do on these inputs, leaf by leaf (no kernel is computed).

    ``print(structured_plan(...))`` shows each leaf's kind, strategy, estimated GFLOP and, for a
    fallback, why it was not recognised. Arguments as :func:`structured_ntk`.
    """
    x1, x2, dtype, outputs = _prepare(apply_fn, params, x1, x2, dtype, outputs)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    with _precision(dtype):
        p = _cast_tree(params, dtype)
        an = _analysed(*_key(apply_fn, p, x1.shape[1:], dtype))
        n2 = x1.shape[0] if x2 is None else x2.shape[0]
        return _plan(an, x1.shape[0], n2, x2 is None, outputs, strategy)[0]


def structured_ntk(
    apply_fn: Callable,
    params,
    x1,
    x2=None,
    *,
    dtype=None,
    batch_size: int = STRUCTURED_BATCH_SIZE,
    outputs: str = "mean",
    memory_budget: int = MEMORY_BUDGET,
    strategy: str = "auto",
    return_plan: bool = False,
):
    r"""Exact empirical NTK of any JAX model, with per-layer Gram products where the program allows.

    The same quantity as :func:`~pytest_ntk.science.empirical.empirical_ntk` (and the same
    arguments: ``apply_fn(params, x)`` treats rows independently and returns ``(n,)`` or ``(n, K)``;
    it must be hashable, and the same function object reuses the compilations), computed leaf by leaf
    from the traced program as described in the module docstring: dense products by Gram matrices of
    layer inputs and back-propagated signals (or per-example gradients, whichever is cheaper),
    convolutions by per-example kernel gradients from patches, biases folded into their product,
    other linear uses by the transposed signal, and everything else by the exact per-example
    Jacobian. Equal to the Jacobian contraction up to round-off.

    Args:
        apply_fn, params, x1, x2, dtype, outputs: as :func:`empirical_ntk`.
        batch_size: most rows per block (default ``STRUCTURED_BATCH_SIZE``). Fewer are used when the
            features of ``2 * rows`` examples, the transient work of the examples computed at once
            and the position-pair Grams of ``rows^2`` pairs would exceed ``memory_budget`` bytes.
            When both inputs fit in one block the kernel is one fused compiled call.
        memory_budget: bytes, as above; the transient work (activations, cotangents, patches) of the
            examples computed at once is kept within an eighth of it.
        strategy: ``"auto"`` (each product by the cheaper of the two flop counts), or ``"gram"`` /
            ``"gradient"`` for every dense and convolutional product (to compare; both are exact).
        return_plan: also return the :class:`StructuredPlan` (see :func:`structured_plan`).

    Returns:
        float64 numpy array, shape ``(n1, n2)`` (``outputs="mean"``) or ``(n1, n2, K, K)``;
        ``(kernel, plan)`` with ``return_plan=True``.
    """
    x1, x2, dtype, outputs = _prepare(apply_fn, params, x1, x2, dtype, outputs)
    batch_size = _check_batch_size(batch_size)
    memory_budget = _check_batch_size(memory_budget, "memory_budget")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not isinstance(return_plan, bool):
        raise ValueError(f"return_plan must be True or False, got {return_plan!r}")
    sym = x2 is None
    xs2 = x1 if sym else x2
    n1, n2 = x1.shape[0], xs2.shape[0]
    with _precision(dtype):
        p = _cast_tree(params, dtype)
        key = _key(apply_fn, p, x1.shape[1:], dtype)
        an = _analysed(*key)
        plan, strategies = _plan(an, n1, n2, sym, outputs, strategy)
        engine = _engine(*key, outputs, strategies)
        leaves = jax.tree_util.tree_leaves(p)
        K = engine.K
        rows, micro = _rows(engine.an, dtype.itemsize, outputs, batch_size, memory_budget)
        extra = () if outputs == "mean" else (K, K)
        if (n1 if sym else n1 + n2) <= micro:  # every row's features at once, in one program
            j2 = None if sym else jnp.asarray(x2, dtype)
            out = engine.fused(leaves, jnp.asarray(x1, dtype), j2)
            out = np.asarray(out, np.float64) if out is not None else np.zeros((n1, n2) + extra)
        else:
            # Blocks of equal size (as few as ``rows`` allows), padded to ``rows`` rows, cut into equal
            # chunks of ``micro`` rows: never more rows per block or per chunk than the rule allows.
            n_max = max(n1, n2)
            per_block = -(-n_max // -(-n_max // rows))
            chunks = -(-per_block // micro)
            micro = -(-per_block // chunks)
            rows = chunks * micro
            out = _blocked(engine, leaves, x1, x2, rows, micro, dtype, extra, memory_budget)
    if sym:
        out = _symmetrize(out)
    out = _finite(out, "structured_ntk")
    return (out, plan) if return_plan else out


def _blocked(engine: _Engine, leaves, x1, x2, rows, micro, dtype, extra, budget):
    """Kernel blocks over row blocks (zero padded to one shape, so each function compiles once).

    Each ``x1`` block's features are computed once, ``micro`` rows at a time; ``x2`` blocks'
    features are kept across ``x1`` blocks when all of them fit the budget, else recomputed per pair.
    With ``x2=None`` only blocks ``j >= i`` are computed, then mirrored.
    """
    sym = x2 is None
    xs2 = x1 if sym else x2
    n1, n2 = x1.shape[0], xs2.shape[0]
    out = np.zeros((n1, n2) + extra, np.float64)
    b1 = [(s, min(s + rows, n1)) for s in range(0, n1, rows)]
    b2 = b1 if sym else [(s, min(s + rows, n2)) for s in range(0, n2, rows)]

    def feats(x, s, e):
        return engine.features_in_chunks(leaves, jnp.asarray(_pad_rows(x[s:e], rows), dtype), micro, e - s)

    stored, _ = _row_bytes(engine.an, dtype.itemsize)
    keep = stored * (n2 + rows) <= budget
    cache: dict = {}

    def second(j):
        if j in cache:
            return cache[j]
        f = feats(xs2, *b2[j])
        if keep:
            cache[j] = f
        return f

    for i, (s1, e1) in enumerate(b1):
        f1 = second(i) if sym else feats(x1, s1, e1)
        for j, (s2, e2) in enumerate(b2):
            if sym and j < i:
                continue
            block = engine.pair(f1, f1 if (sym and j == i) else second(j))
            if block is not None:
                _place(out, block, s1, e1, s2, e2, sym and j > i)
        if sym:
            cache.pop(i, None)
    return out
