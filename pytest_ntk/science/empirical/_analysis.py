"""Analysis and plan of the structured empirical NTK: which leaf is computed how, and at what cost.

Holds :class:`_Analysis` (each leaf followed through views to its uses), :func:`_analyse` (trace a
model and classify its leaves into products, linear uses, fallbacks), the bias folding
(:func:`_fold_target`), the flop counts of the two strategies and the plan that chooses between
them (:class:`LeafPlan`, :class:`StructuredPlan`, re-exported by
:mod:`pytest_ntk.science.empirical.structured`). The math is in that module's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from ._program import _Const, _flatten, _operand_shape, _Program

#: Unary ops that keep a leaf a permutation of itself (its Jacobian inner products unchanged).
_VIEWS = {"reshape", "transpose", "squeeze", "copy", "copy_p", "rev", "neg", "expand_dims"}
#: Ops linear in one operand, handled by the transpose of that one op (gradient features).
_LINEAR = {"broadcast_in_dim", "add", "add_any", "sub", "mul"}
_ADDS = {"add", "add_any", "sub"}


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
