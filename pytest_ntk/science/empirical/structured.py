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
two blocks, the transient work of one (activations, cotangents, patches) and the position-pair Grams
of a block pair fit ``memory_budget``; features of every ``x2`` block are kept when they fit, else
recomputed per pair. The ``(n, P)`` Jacobian exists only for fallback and gradient-strategy leaves.

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
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import ClosedJaxpr, Literal

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

__all__ = ["STRATEGIES", "STRUCTURED_BATCH_SIZE", "LeafPlan", "StructuredPlan", "structured_ntk", "structured_plan"]

STRATEGIES = ("auto", "gram", "gradient")
#: Most rows per block of :func:`structured_ntk` (the memory rule may take fewer).
STRUCTURED_BATCH_SIZE = 1024

# ============================================================================ the flat program
_INLINE = {"pjit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr"}
#: Unary ops that keep a leaf a permutation of itself (its Jacobian inner products unchanged).
_VIEWS = {"reshape", "transpose", "squeeze", "copy", "copy_p", "rev", "neg", "expand_dims"}
#: Ops linear in one operand, handled by the transpose of that one op (gradient features).
_LINEAR = {"broadcast_in_dim", "add", "add_any", "sub", "mul"}
_ADDS = {"add", "add_any", "sub"}


class _Const:
    """A literal or closed-over constant in the flat program."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


@dataclass
class _Op:
    prim: Any
    subfuns: tuple
    params: dict
    ins: tuple  # int value ids or _Const
    outs: tuple  # int value ids


@dataclass
class _Program:
    """``single(params, x)`` flattened: ops over integer value ids, nested jit calls inlined."""

    ops: list
    leaf_ids: list
    x_id: int
    out_ref: Any
    avals: dict  # value id -> (shape, dtype)
    live: list = field(default_factory=list)  # indices of ops that reach the output
    consumers: dict = field(default_factory=dict)  # value id -> [(op index | "out", operand pos)]


def _flatten(closed) -> _Program:
    ops: list[_Op] = []
    avals: dict[int, tuple] = {}
    counter = itertools.count()

    def walk(jaxpr, consts, in_refs):
        env: dict = {}
        for v, c in zip(jaxpr.constvars, consts):
            env[v] = _Const(c)
        for v, r in zip(jaxpr.invars, in_refs):
            env[v] = r

        def read(a):
            return _Const(a.val) if isinstance(a, Literal) else env[a]

        for eqn in jaxpr.eqns:
            ins = tuple(read(a) for a in eqn.invars)
            key = _INLINE.get(eqn.primitive.name)
            inner = eqn.params.get(key) if key else None
            if isinstance(inner, ClosedJaxpr):
                outs = walk(inner.jaxpr, inner.consts, ins)
            else:
                subfuns, params = eqn.primitive.get_bind_params(eqn.params)
                ids = tuple(next(counter) for _ in eqn.outvars)
                for i, v in zip(ids, eqn.outvars):
                    avals[i] = (tuple(v.aval.shape), v.aval.dtype)
                ops.append(_Op(eqn.primitive, tuple(subfuns), params, ins, ids))
                outs = ids
            for v, r in zip(eqn.outvars, outs):
                env[v] = r
        return [read(a) for a in jaxpr.outvars]

    in_ids = []
    for v in closed.jaxpr.invars:
        i = next(counter)
        avals[i] = (tuple(v.aval.shape), v.aval.dtype)
        in_ids.append(i)
    (out_ref,) = walk(closed.jaxpr, closed.consts, in_ids)
    prog = _Program(ops, in_ids[:-1], in_ids[-1], out_ref, avals)
    # liveness (what reaches the output) and the consumers of every live value
    live_ids = {out_ref} if isinstance(out_ref, int) else set()
    live = []
    for k in range(len(ops) - 1, -1, -1):
        if any(o in live_ids for o in ops[k].outs):
            live.append(k)
            live_ids.update(r for r in ops[k].ins if isinstance(r, int))
    prog.live = live[::-1]
    consumers: dict[int, list] = {}
    for k in prog.live:
        for p, r in enumerate(ops[k].ins):
            if isinstance(r, int):
                consumers.setdefault(r, []).append((k, p))
    if isinstance(out_ref, int):
        consumers.setdefault(out_ref, []).append(("out", 0))
    prog.consumers = consumers
    return prog


def _run(prog: _Program, records: frozenset, leaves, x, probes):
    """Evaluate the program; ``probes[id]`` is added to value ``id``; returns (output, recorded operands)."""
    env = dict(zip(prog.leaf_ids, leaves))
    env[prog.x_id] = x

    def read(r):
        return r.value if isinstance(r, _Const) else env[r]

    rec = {}
    for k in prog.live:
        op = prog.ops[k]
        vals = [read(r) for r in op.ins]
        for p in range(len(vals)):
            if (k, p) in records:
                rec[(k, p)] = vals[p]
        out = op.prim.bind(*op.subfuns, *vals, **op.params)
        outs = out if op.prim.multiple_results else (out,)
        for i, v in zip(op.outs, outs):
            env[i] = v + probes[i] if i in probes else v
    return read(prog.out_ref), rec


# ============================================================================ analysis
def _size(shape) -> int:
    return int(math.prod(shape))


class _Analysis:
    """Follows every leaf through views to its uses, and classifies the uses."""

    def __init__(self, prog: _Program):
        self.prog = prog
        self.producer = {o: k for k, op in enumerate(prog.ops) for o in op.outs}
        self._const_cache: dict = {}

    # ------------------------------------------------------------------ constants
    def const_value(self, ref, depth=0):
        """Concrete value of a reference that depends on neither parameters nor inputs, else None."""
        if isinstance(ref, _Const):
            return np.asarray(ref.value)
        if ref in self._const_cache:
            return self._const_cache[ref]
        value = None
        k = self.producer.get(ref)
        if k is not None and depth < 64:
            op = self.prog.ops[k]
            shape, _ = self.prog.avals[ref]
            if not op.subfuns and _size(shape) <= 1 << 16:
                vals = [self.const_value(r, depth + 1) for r in op.ins]
                if all(v is not None for v in vals):
                    try:
                        out = op.prim.bind(*[jnp.asarray(v) for v in vals], **op.params)
                        outs = out if op.prim.multiple_results else (out,)
                        for i, v in zip(op.outs, outs):
                            self._const_cache[i] = np.asarray(v)
                        value = self._const_cache[ref]
                    except Exception:  # noqa: BLE001 -- not foldable: treated as non-constant
                        value = None
        self._const_cache[ref] = value
        return value

    def const_scalar(self, ref):
        v = self.const_value(ref)
        if v is None or v.size != 1 or not np.issubdtype(v.dtype, np.number):
            return None
        return float(np.real(v.reshape(())))

    # ------------------------------------------------------------------ views
    def _as_view(self, op, view):
        """If ``op`` maps a view of a leaf to a view of it: (operand position, scale factor), else None."""
        name = op.prim.name
        ins = op.ins
        if len(op.outs) != 1:
            return None
        out_shape = self.prog.avals[op.outs[0]][0]
        if name in _VIEWS and len(ins) == 1 and isinstance(ins[0], int) and ins[0] in view:
            return 0, 1.0
        if name == "convert_element_type" and isinstance(ins[0], int) and ins[0] in view:
            old = self.prog.avals[ins[0]][1]
            new = self.prog.avals[op.outs[0]][1]
            if jnp.issubdtype(old, jnp.floating) and jnp.issubdtype(new, jnp.floating):
                return 0, 1.0
            return None
        if name == "broadcast_in_dim" and isinstance(ins[0], int) and ins[0] in view:
            if _size(out_shape) == _size(self.prog.avals[ins[0]][0]):  # only size-1 axes added
                return 0, 1.0
            return None
        if name in ("mul", "div") and len(ins) == 2:
            for p in (0, 1) if name == "mul" else (0,):
                r, other = ins[p], ins[1 - p]
                if isinstance(r, int) and r in view and tuple(self.prog.avals[r][0]) == tuple(out_shape):
                    c = self.const_scalar(other)
                    if c is not None and c != 0.0:
                        return p, (c if name == "mul" else 1.0 / c)
        return None

    def follow_leaves(self):
        """``view[id] = (leaf index, scale)`` and each leaf's uses ``[(op index | "out", position)]``."""
        prog = self.prog
        view = {lid: (i, 1.0) for i, lid in enumerate(prog.leaf_ids)}
        uses: dict[int, list] = {i: [] for i in range(len(prog.leaf_ids))}
        for k in prog.live:
            op = prog.ops[k]
            v = self._as_view(op, view)
            if v is not None:
                p, c = v
                leaf, scale = view[op.ins[p]]
                view[op.outs[0]] = (leaf, scale * c)
                continue
            for p, r in enumerate(op.ins):
                if isinstance(r, int) and r in view:
                    uses[view[r][0]].append((k, p))
        if isinstance(prog.out_ref, int) and prog.out_ref in view:
            uses[view[prog.out_ref][0]].append(("out", 0))
        return view, uses

    def output_chain(self, value_id):
        """Follow a product's output through single-consumer scalings: (end id, scale)."""
        prog, scale = self.prog, 1.0
        while True:
            cons = prog.consumers.get(value_id, [])
            if len(cons) != 1 or cons[0][0] == "out":
                return value_id, scale
            k, p = cons[0]
            op = prog.ops[k]
            name = op.prim.name
            if name in ("neg", "copy", "copy_p") and len(op.ins) == 1:
                value_id = op.outs[0]
                continue
            if name in ("mul", "div") and len(op.ins) == 2 and (name == "mul" or p == 0):
                c = self.const_scalar(op.ins[1 - p])
                if c is not None and c != 0.0 and prog.avals[op.outs[0]][0] == prog.avals[value_id][0]:
                    scale *= c if name == "mul" else 1.0 / c
                    value_id = op.outs[0]
                    continue
            return value_id, scale


# ============================================================================ the plan
@dataclass(frozen=True)
class LeafPlan:
    """How one parameter leaf's share of the NTK is computed.

    ``kind``: ``"dense"`` (operand of a ``dot_general``), ``"conv"`` (kernel of a convolution),
    ``"bias"`` (added to a dense/conv output, folded into its term), ``"linear"`` (broadcast, added or
    multiplied elementwise: its gradient is the transposed signal), ``"unused"`` (no effect on the
    output: contributes 0) or ``"fallback"`` (exact per-example Jacobian).
    ``strategy``: ``"gram"``, ``"gradient"``, ``"folded"``, ``"jacobian"`` or ``"none"``.
    ``flops``: estimated flops of this leaf's term for the plan's ``n1 x n2`` kernel (0 when folded).
    """

    path: str
    shape: tuple
    kind: str
    strategy: str
    primitive: str | None
    reason: str
    flops: int

    @property
    def recognised(self) -> bool:
        return self.kind != "fallback"


@dataclass(frozen=True)
class StructuredPlan:
    """Leaf by leaf: what :func:`structured_ntk` recognised, how it computes it, and what fell back."""

    leaves: tuple
    n1: int
    n2: int
    out_dim: int
    outputs: str

    @property
    def recognised(self) -> tuple:
        return tuple(leaf for leaf in self.leaves if leaf.recognised)

    @property
    def fallback(self) -> tuple:
        return tuple(leaf for leaf in self.leaves if not leaf.recognised)

    def fallback_fraction(self) -> float:
        """Fraction of the parameters whose Jacobian is materialised (the generic path's cost)."""
        total = sum(_size(leaf.shape) for leaf in self.leaves)
        return sum(_size(leaf.shape) for leaf in self.fallback) / max(total, 1)

    def __str__(self) -> str:
        rows = [("leaf", "shape", "kind", "strategy", "GFLOP", "how")]
        for leaf in self.leaves:
            rows.append(
                (leaf.path, "x".join(map(str, leaf.shape)) or "()", leaf.kind, leaf.strategy,
                 f"{leaf.flops / 1e9:.3g}", leaf.reason)
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [
            f"structured NTK plan: n1={self.n1}, n2={self.n2}, K={self.out_dim}, outputs={self.outputs!r}; "
            f"{len(self.recognised)}/{len(self.leaves)} leaves recognised, "
            f"{100 * self.fallback_fraction():.1f}% of parameters by Jacobian"
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]
        return "\n".join(lines)


@dataclass
class _Item:
    """One recognised product (dense or conv) and the leaf on its parameter side."""

    leaf: int
    op: int
    pos: int  # operand position of the leaf
    kind: str  # "dense" | "conv"
    probe: int  # value id where the signal is taken
    scale: float  # leaf-view scale times output-chain scale
    G: int
    S: int
    F: int
    O: int
    folds: list = field(default_factory=list)  # [(bias leaf, scale)]
    strategy: str = "gram"


@dataclass
class _Linear:
    leaf: int
    op: int
    pos: int
    scale: float


@dataclass
class _Analysed:
    """What :func:`_analyse` finds in a program: independent of n1, n2 (strategies are chosen later)."""

    prog: _Program
    items: list
    linears: list
    fallbacks: list  # [(leaf, reason, primitive name)]
    unused: list
    non_float: list
    paths: list
    shapes: list
    K: int


def _dense_dims(op, pos, lhs_shape, rhs_shape):
    """Canonical sizes (G, S, F, O) and the axis orders of a dot_general with the leaf at ``pos``."""
    (lc, rc), (lb, rb) = op.params["dimension_numbers"]
    lc, rc, lb, rb = map(tuple, (lc, rc, lb, rb))
    if pos == 1:
        hc, pc, hb, pb, h_shape, p_shape = lc, rc, lb, rb, lhs_shape, rhs_shape
    else:
        hc, pc, hb, pb, h_shape, p_shape = rc, lc, rb, lb, rhs_shape, lhs_shape
    hf = tuple(d for d in range(len(h_shape)) if d not in hc and d not in hb)
    pf = tuple(d for d in range(len(p_shape)) if d not in pc and d not in pb)
    G = _size([h_shape[d] for d in hb])
    S = _size([h_shape[d] for d in hf])
    F = _size([h_shape[d] for d in hc])
    O = _size([p_shape[d] for d in pf])
    nb = len(lb)
    if pos == 1:
        y_hf = tuple(range(nb, nb + len(hf)))
        y_pf = tuple(range(nb + len(hf), nb + len(hf) + len(pf)))
    else:
        y_pf = tuple(range(nb, nb + len(pf)))
        y_hf = tuple(range(nb + len(pf), nb + len(pf) + len(hf)))
    return (G, S, F, O), hb + hf + hc, tuple(range(nb)) + y_hf + y_pf, set(range(nb)) | set(y_pf)


def _conv_dims(op, lhs_shape, rhs_shape, out_shape):
    lhs_spec, rhs_spec, out_spec = op.params["dimension_numbers"]
    S = _size([out_shape[d] for d in (out_spec[0],) + tuple(out_spec[2:])])
    F = _size([rhs_shape[d] for d in (rhs_spec[1],) + tuple(rhs_spec[2:])])
    O = out_shape[out_spec[1]]
    return (1, S, F, O), (out_spec[0],) + tuple(out_spec[2:]) + (out_spec[1],), {out_spec[1]}


def _kept_dims(prog, lin, y_shape):
    """Axes of ``y`` (size > 1) along which a bias varies (it is constant along the others).

    The bias reaches ``y``'s shape by ``broadcast_in_dim`` or by the implicit broadcasting of size-1
    axes in ``add`` (both appear in jaxprs).
    """
    op = prog.ops[lin.op]
    if op.prim.name == "broadcast_in_dim":
        operand_shape = prog.avals[op.ins[0]][0]
        return {d for j, d in enumerate(op.params["broadcast_dimensions"]) if operand_shape[j] == y_shape[d] > 1}
    u_shape = _operand_shape(prog, op.ins[lin.pos])
    if len(u_shape) != len(y_shape):
        return None
    return {d for d in range(len(y_shape)) if u_shape[d] == y_shape[d] > 1}


def _analyse(apply_fn, params, row_shape, dtype) -> _Analysed:
    """Trace ``apply_fn`` on one example (``params``: a pytree of ShapeDtypeStruct) and classify its leaves."""
    leaves = jax.tree_util.tree_leaves(params)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]

    def single(p, x):
        return jnp.reshape(apply_fn(p, x[None]), (-1,))

    out_shape = jax.eval_shape(apply_fn, params, jax.ShapeDtypeStruct((1,) + tuple(row_shape), dtype)).shape
    if len(out_shape) not in (1, 2):
        raise ValueError(f"apply_fn must return shape (n,) or (n, K), got {out_shape} for one row")
    closed = jax.make_jaxpr(single)(params, jax.ShapeDtypeStruct(row_shape, dtype))
    K = int(closed.out_avals[0].shape[0])
    prog = _flatten(closed)
    an = _Analysis(prog)
    view, uses = an.follow_leaves()
    items: list[_Item] = []
    linears: list[_Linear] = []
    fallbacks, unused, non_float = [], [], []
    for i, leaf in enumerate(leaves):
        name_of = lambda u: "output" if u[0] == "out" else prog.ops[u[0]].prim.name  # noqa: E731
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            non_float.append(i)
            continue
        u = uses[i]
        if not u:
            unused.append(i)
            continue
        if len(u) > 1:
            names = ", ".join(sorted({name_of(x) for x in u}))
            fallbacks.append((i, f"used in {len(u)} places ({names})", names))
            continue
        k, p = u[0]
        if k == "out":
            fallbacks.append((i, "returned as an output", None))
            continue
        op = prog.ops[k]
        name = op.prim.name
        ref = op.ins[p]
        scale = view[ref][1]
        if name == "dot_general":
            lhs_shape, rhs_shape = (prog.avals[r][0] if isinstance(r, int) else np.shape(r.value) for r in op.ins)
            dims = _dense_dims(op, p, lhs_shape, rhs_shape)[0]
            end, out_scale = an.output_chain(op.outs[0])
            items.append(_Item(i, k, p, "dense", end, scale * out_scale, *dims))
        elif name == "conv_general_dilated" and p == 1:
            if op.params["feature_group_count"] != 1 or op.params["batch_group_count"] != 1:
                fallbacks.append((i, "grouped convolution (feature/batch groups)", name))
                continue
            lhs_shape, rhs_shape = (prog.avals[r][0] if isinstance(r, int) else np.shape(r.value) for r in op.ins)
            dims = _conv_dims(op, lhs_shape, rhs_shape, prog.avals[op.outs[0]][0])[0]
            end, out_scale = an.output_chain(op.outs[0])
            items.append(_Item(i, k, p, "conv", end, scale * out_scale, *dims))
        elif name in _LINEAR and not (name == "broadcast_in_dim" and p != 0):
            linears.append(_Linear(i, k, p, scale))
        else:
            where = "the input side of a convolution" if name == "conv_general_dilated" else name
            fallbacks.append((i, f"used in {where}", name))
    # fold biases added straight to a product's (scaled) output into that product's term
    by_probe = {}
    for item in items:
        by_probe.setdefault(item.probe, []).append(item)
    kept_linears = []
    for lin in linears:
        item = _fold_target(prog, lin, by_probe)
        if item is None:
            kept_linears.append(lin)
        else:
            item.folds.append((lin.leaf, lin.scale))
    return _Analysed(prog, items, kept_linears, fallbacks, unused, non_float, paths,
                     [tuple(np.shape(leaf)) for leaf in leaves], K)


def _fold_target(prog, lin: _Linear, by_probe):
    """The product whose output ``lin``'s bias is added to (sharing its signal), or None."""
    op = prog.ops[lin.op]
    if op.prim.name == "broadcast_in_dim":
        u = op.outs[0]
        cons = prog.consumers.get(u, [])
        if len(cons) != 1 or cons[0][0] == "out":
            return None
        add_k, u_pos = cons[0]
    elif op.prim.name in _ADDS:
        add_k, u_pos = lin.op, lin.pos
        u = op.ins[u_pos]
    else:
        return None
    add = prog.ops[add_k]
    if add.prim.name not in _ADDS or len(add.ins) != 2:
        return None
    e = add.ins[1 - u_pos]
    if not isinstance(e, int) or e not in by_probe or len(by_probe[e]) != 1:
        return None
    if len(prog.consumers.get(e, [])) != 1:
        return None
    item = by_probe[e][0]
    y_shape = prog.avals[e][0]
    if prog.avals[add.outs[0]][0] != y_shape:
        return None
    if item.kind == "conv":
        want = _conv_dims(prog.ops[item.op], *(prog.avals[r][0] if isinstance(r, int) else np.shape(r.value)
                                                for r in prog.ops[item.op].ins), y_shape)[2]
    else:
        src = prog.ops[item.op]
        shapes = [prog.avals[r][0] if isinstance(r, int) else np.shape(r.value) for r in src.ins]
        want = _dense_dims(src, item.pos, *shapes)[3]
    want = {d for d in want if y_shape[d] > 1}
    if _kept_dims(prog, lin, y_shape) != want:
        return None
    return item


# ============================================================================ strategies and flops
def _strategy_flops(item: _Item, n1: int, n2: int, sym: bool, K: int, outputs: str) -> dict:
    Kp = K if outputs == "mean" else K * K
    G, S, F, O = item.G, item.S, item.F, item.O
    gram = 2 * n1 * n2 * G * S * S * (F + Kp * O) + n1 * n2 * G * S * S * Kp
    rows = n1 if sym else n1 + n2
    gradient = 2 * rows * K * G * S * F * O + 2 * n1 * n2 * Kp * G * F * O
    return {"gram": gram, "gradient": gradient}


def _plan(an: _Analysed, n1: int, n2: int, sym: bool, outputs: str, force: str = "auto"):
    """``(plan, strategies)``: each product's strategy (the one of fewer flops unless ``force``d)."""
    K = an.K
    Kp = K if outputs == "mean" else K * K
    rows = n1 if sym else n1 + n2
    entries: dict[int, LeafPlan] = {}
    strategies = []
    for item in an.items:
        flops = _strategy_flops(item, n1, n2, sym, K, outputs)
        strategy = "gram" if flops["gram"] <= flops["gradient"] else "gradient"
        strategy = strategy if force == "auto" else force
        strategies.append(strategy)
        what = (
            f"G={item.G} groups, S={item.S} positions, F={item.F} in, O={item.O} out; "
            f"gram {flops['gram'] / 1e9:.3g} vs gradient {flops['gradient'] / 1e9:.3g} GFLOP"
        )
        entries[item.leaf] = LeafPlan(an.paths[item.leaf], an.shapes[item.leaf], item.kind, strategy,
                                      an.prog.ops[item.op].prim.name, what, int(flops[strategy]))
        for leaf, _ in item.folds:
            entries[leaf] = LeafPlan(an.paths[leaf], an.shapes[leaf], "bias", "folded", "add",
                                     f"added to the output of {an.paths[item.leaf]}; shares its signal", 0)
    for lin in an.linears:
        size = _size(an.shapes[lin.leaf])
        name = an.prog.ops[lin.op].prim.name
        entries[lin.leaf] = LeafPlan(an.paths[lin.leaf], an.shapes[lin.leaf], "linear", "gradient", name,
                                     f"signal through the transpose of {name}", 2 * n1 * n2 * Kp * size)
    for leaf, reason, name in an.fallbacks:
        size = _size(an.shapes[leaf])
        entries[leaf] = LeafPlan(an.paths[leaf], an.shapes[leaf], "fallback", "jacobian", name, reason,
                                 2 * n1 * n2 * Kp * size + 2 * rows * K * size)
    for leaf in an.unused:
        entries[leaf] = LeafPlan(an.paths[leaf], an.shapes[leaf], "unused", "none", None,
                                 "does not reach the output: contributes 0", 0)
    for leaf in an.non_float:
        entries[leaf] = LeafPlan(an.paths[leaf], an.shapes[leaf], "unused", "none", None,
                                 "not floating point: not differentiated", 0)
    plan = StructuredPlan(tuple(entries[i] for i in range(len(an.paths))), n1, n2, K, outputs)
    return plan, tuple(strategies)


# ============================================================================ features
def _conv_patches(lhs, params, rhs_shape):
    """``(S, F)`` patches of one example's convolution input, in the order of :func:`_conv_dims`.

    Channels stay the minor axis (positions x kernel offsets x channels): padding (interior padding
    for ``lhs_dilation``) and one strided slice per kernel offset, stacked next to the channels --
    data movement only, so the per-example kernel gradient ``patches^T g`` is one matrix product.
    (Stacking offsets outside the channels and transposing afterwards ran ~10x slower on XLA's CPU
    backend.) The feature order (offset, channel) is a permutation of the kernel's (channel, offset):
    inner products of per-example gradients do not depend on it.
    """
    lhs_spec, rhs_spec, _ = params["dimension_numbers"]
    x = jnp.transpose(lhs, (lhs_spec[0],) + tuple(lhs_spec[2:]) + (lhs_spec[1],))  # (N, spatial..., C)
    nsp = x.ndim - 2
    ksz = [rhs_shape[rhs_spec[2 + d]] for d in range(nsp)]
    strides, rdil = params["window_strides"], params["rhs_dilation"]
    cfg = (
        [(0, 0, 0)]
        + [(int(lo), int(hi), int(ld) - 1) for (lo, hi), ld in zip(params["padding"], params["lhs_dilation"])]
        + [(0, 0, 0)]
    )
    x = lax.pad(x, jnp.zeros((), x.dtype), cfg)
    out_sp = [(x.shape[1 + d] - (ksz[d] - 1) * rdil[d] - 1) // strides[d] + 1 for d in range(nsp)]
    pieces = []
    for offs in itertools.product(*[range(k) for k in ksz]):
        start = [0] + [o * r for o, r in zip(offs, rdil)] + [0]
        limit = [x.shape[0]] + [s + (n - 1) * st + 1 for s, n, st in zip(start[1:], out_sp, strides)] + [x.shape[-1]]
        pieces.append(lax.slice(x, start, limit, [1] + list(strides) + [1]))
    p = jnp.stack(pieces, axis=-2)  # (N, out spatial..., offsets, C)
    return p.reshape(-1, p.shape[-2] * p.shape[-1])


def _operand_shape(prog, r):
    return prog.avals[r][0] if isinstance(r, int) else np.shape(r.value)


def _item_inputs(prog, item: _Item, h):
    """One example's ``(G, S, F)`` inputs of a product, scaled."""
    op = prog.ops[item.op]
    if item.kind == "conv":
        H = _conv_patches(h, op.params, _operand_shape(prog, op.ins[1]))
    else:
        shapes = [_operand_shape(prog, r) for r in op.ins]
        _, h_perm, _, _ = _dense_dims(op, item.pos, *shapes)
        H = jnp.transpose(h, h_perm)
    return item.scale * H.reshape(item.G, item.S, item.F)


def _item_signal(prog, item: _Item, g):
    """One example's ``(K, G, S, O)`` signals of a product (``g``: ``(K, *output shape)``)."""
    op = prog.ops[item.op]
    shapes = [_operand_shape(prog, r) for r in op.ins]
    if item.kind == "conv":
        perm = _conv_dims(op, *shapes, prog.avals[op.outs[0]][0])[1]
    else:
        perm = _dense_dims(op, item.pos, *shapes)[2]
    return jnp.transpose(g, (0,) + tuple(1 + d for d in perm)).reshape(g.shape[0], item.G, item.S, item.O)


def _linear_gradient(prog, lin: _Linear, others: dict, g, dtype):
    """``K x |leaf|`` gradient of a leaf used in one linear op, from the signal at that op's output."""
    op = prog.ops[lin.op]
    w_shape = prog.avals[op.ins[lin.pos]][0]

    def forward(w):
        vals = [w if p == lin.pos else (r.value if isinstance(r, _Const) else others[p]) for p, r in enumerate(op.ins)]
        return op.prim.bind(*op.subfuns, *vals, **op.params)

    _, vjp = jax.vjp(forward, jnp.zeros(w_shape, dtype))
    grads = jax.vmap(lambda ga: vjp(ga)[0])(g)
    return lin.scale * grads.reshape(g.shape[0], -1)


class _Engine:
    """Jit-compiled feature and kernel functions of one analysed program and one choice of strategies."""

    def __init__(self, an: _Analysed, outputs: str, dtype):
        self.an, self.outputs, self.dtype, self.K = an, outputs, np.dtype(dtype), an.K
        prog = an.prog
        self.fb = [leaf for leaf, _, _ in an.fallbacks]
        self.probe_ids = sorted({item.probe for item in an.items} | {prog.ops[lin.op].outs[0] for lin in an.linears})
        rec = {(item.op, 1 - item.pos) for item in an.items}
        for lin in an.linears:
            rec |= {(lin.op, p) for p, r in enumerate(prog.ops[lin.op].ins) if p != lin.pos and isinstance(r, int)}
        self.records = frozenset(rec)
        self.gram_items = [item for item in an.items if item.strategy == "gram"]
        self.grad_items = [item for item in an.items if item.strategy == "gradient"]
        self.features = jax.jit(self._features)
        self.pair = jax.jit(self._pair)
        self.fused = jax.jit(self._fused)

    # ------------------------------------------------------------------ one example
    def _row(self, leaves, x):
        an, prog, K, dtype = self.an, self.an.prog, self.K, self.dtype

        def f(fb_leaves, probes):
            merged = list(leaves)
            for i, v in zip(self.fb, fb_leaves):
                merged[i] = v
            out, rec = _run(prog, self.records, merged, x, probes)
            return jnp.reshape(out, (K,)), rec

        probes = {i: jnp.zeros(prog.avals[i][0], dtype) for i in self.probe_ids}
        fb_leaves = [leaves[i] for i in self.fb]
        if probes or fb_leaves:
            (j_fb, j_probe), rec = jax.jacrev(f, argnums=(0, 1), has_aux=True)(fb_leaves, probes)
        else:
            j_fb, j_probe, rec = [], {}, f([], {})[1]
        grams, grads = [], []
        for item in self.gram_items:
            H = _item_inputs(prog, item, rec[(item.op, 1 - item.pos)])
            grams.append((H, _item_signal(prog, item, j_probe[item.probe])))
        for item in self.grad_items:
            H = _item_inputs(prog, item, rec[(item.op, 1 - item.pos)])
            g = _item_signal(prog, item, j_probe[item.probe])
            grads.append(jnp.einsum("gsf,kgso->kgfo", H, g).reshape(K, -1))  # per-example gradient
            for _, c in item.folds:
                grads.append(c * g.sum(axis=2).reshape(K, -1))
        for lin in an.linears:
            op = prog.ops[lin.op]
            others = {p: rec[(lin.op, p)] for p in range(len(op.ins)) if (lin.op, p) in self.records}
            grads.append(_linear_gradient(prog, lin, others, j_probe[op.outs[0]], dtype))
        for j in j_fb:
            grads.append(jnp.reshape(j, (K, -1)))
        grad = jnp.concatenate(grads, axis=1) if grads else None
        return tuple(grams), grad

    def _features(self, leaves, xb):
        return jax.vmap(self._row, in_axes=(None, 0))(leaves, xb)

    # ------------------------------------------------------------------ two blocks
    def _pair(self, f1, f2):
        (grams1, grad1), (grams2, grad2) = f1, f2
        K, mean = self.K, self.outputs == "mean"
        theta = None
        for item, (H1, g1), (H2, g2) in zip(self.gram_items, grams1, grams2):
            cb2 = float(sum(c * c for _, c in item.folds))
            term = _gram_term(H1, g1, H2, g2, cb2, mean, K)
            theta = term if theta is None else theta + term
        if grad1 is not None:
            b1, b2, P = grad1.shape[0], grad2.shape[0], grad1.shape[2]
            if mean:
                term = grad1.reshape(b1, K * P) @ grad2.reshape(b2, K * P).T
                term = term / K if K > 1 else term
            else:
                term = (grad1.reshape(b1 * K, P) @ grad2.reshape(b2 * K, P).T).reshape(b1, K, b2, K)
                term = term.transpose(0, 2, 1, 3)
            theta = term if theta is None else theta + term
        return theta

    def _fused(self, leaves, x1, x2):
        f1 = self._features(leaves, x1)
        return self._pair(f1, f1 if x2 is None else self._features(leaves, x2))


def _gram_term(H1, g1, H2, g2, cb2, mean, K):
    r""":math:`\sum_{G,s,t} (\langle h_{Gs}, h'_{Gt}\rangle + c_b^2)\langle g_{Gs}, g'_{Gt}\rangle` per output pair."""
    b1, G, S1, F = H1.shape
    b2, _, S2, _ = H2.shape
    O = g1.shape[-1]
    if G == 1 and S1 == 1 and S2 == 1:
        A = H1.reshape(b1, F) @ H2.reshape(b2, F).T
        A = A + cb2 if cb2 else A
        if mean:
            B = g1.reshape(b1, K * O) @ g2.reshape(b2, K * O).T
            return A * B / K if K > 1 else A * B
        B = jnp.einsum("iao,jbo->ijab", g1.reshape(b1, K, O), g2.reshape(b2, K, O))
        return A[:, :, None, None] * B
    A = jnp.einsum("igsf,jgtf->ijgst", H1, H2)
    A = A + cb2 if cb2 else A
    if mean:
        B = jnp.einsum("iagso,jagto->ijgst", g1, g2)
        out = jnp.sum(A * B, axis=(2, 3, 4))
        return out / K if K > 1 else out
    B = jnp.einsum("iagso,jbgto->ijabgst", g1, g2)
    return jnp.einsum("ijgst,ijabgst->ijab", A, B)


# ============================================================================ memory rule
def _row_bytes(an: _Analysed, itemsize: int) -> tuple[int, int]:
    """Bytes per example of the stored features, and of the transient work to compute them."""
    K = an.K
    stored = 0
    for item in an.items:
        if item.strategy == "gram":
            stored += item.G * item.S * (item.F + K * item.O)
        else:
            stored += K * item.G * (item.F + len(item.folds)) * item.O
    stored += sum(K * _size(an.shapes[lin.leaf]) for lin in an.linears)
    stored += sum(K * _size(an.shapes[leaf]) for leaf, _, _ in an.fallbacks)
    activations = sum(_size(an.prog.avals[o][0]) for k in an.prog.live for o in an.prog.ops[k].outs)
    transient = (1 + K) * activations + sum(
        item.G * item.S * (item.F + K * item.O) for item in an.items if item.strategy == "gradient"
    )
    return stored * itemsize, transient * itemsize


def _pair_bytes(an: _Analysed, itemsize: int, outputs: str) -> int:
    """Bytes per pair of examples of the gram intermediates (positions x positions)."""
    Kp = 1 if outputs == "mean" else an.K * an.K
    per = 1 + Kp  # the kernel itself and the signal gram
    for item in an.items:
        if item.strategy == "gram" and (item.S > 1 or item.G > 1):
            per += item.G * item.S * item.S * (1 + Kp)
    return per * itemsize


def _rows(an, itemsize, outputs, batch_size, budget) -> int:
    stored, transient = _row_bytes(an, itemsize)
    pair = _pair_bytes(an, itemsize, outputs)
    b = max(1, batch_size)
    while b > 1 and 2 * b * stored + b * transient + b * b * pair > budget:
        b = max(1, b // 2)
    return b


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
            features of ``2 * rows`` examples, the transient work of ``rows`` examples and the
            position-pair Grams of ``rows^2`` pairs would exceed ``memory_budget`` bytes. When both
            inputs fit in one block the kernel is one fused compiled call.
        memory_budget: bytes, as above.
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
        rows = _rows(engine.an, dtype.itemsize, outputs, batch_size, memory_budget)
        extra = () if outputs == "mean" else (K, K)
        if n1 <= rows and n2 <= rows:
            j2 = None if sym else jnp.asarray(x2, dtype)
            out = engine.fused(leaves, jnp.asarray(x1, dtype), j2)
            out = np.asarray(out, np.float64) if out is not None else np.zeros((n1, n2) + extra)
        else:
            out = _blocked(engine, leaves, x1, x2, rows, dtype, extra, memory_budget)
    if sym:
        out = _symmetrize(out)
    out = _finite(out, "structured_ntk")
    return (out, plan) if return_plan else out


def _blocked(engine: _Engine, leaves, x1, x2, rows, dtype, extra, budget):
    """Kernel blocks over row blocks (zero padded to one shape, so each function compiles once).

    Each ``x1`` block's features are computed once; ``x2`` blocks' features are kept across ``x1``
    blocks when all of them fit the budget, else recomputed per pair. With ``x2=None`` only blocks
    ``j >= i`` are computed, then mirrored.
    """
    sym = x2 is None
    xs2 = x1 if sym else x2
    n1, n2 = x1.shape[0], xs2.shape[0]
    out = np.zeros((n1, n2) + extra, np.float64)
    b1 = [(s, min(s + rows, n1)) for s in range(0, n1, rows)]
    b2 = b1 if sym else [(s, min(s + rows, n2)) for s in range(0, n2, rows)]

    def feats(x, s, e):
        return engine.features(leaves, jnp.asarray(_pad_rows(x[s:e], rows), dtype))

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
