"""The flat program: a model's traced ``jaxpr`` with nested ``jit`` calls inlined, and its interpreter.

Holds :class:`_Program` (ops over integer value ids, with liveness and consumers), :func:`_flatten`
(``ClosedJaxpr`` -> :class:`_Program`), :func:`_run` (evaluation that records operands and adds
probes) and :func:`_operand_shape` (the shape of an operand, value or constant). Part of
:mod:`pytest_ntk.science.empirical.structured`, whose docstring states the math and the method
("How h and g are found").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from jax.extend.core import ClosedJaxpr, Literal

# ============================================================================ the flat program
_INLINE = {"pjit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr"}


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


def _operand_shape(prog, r):
    return prog.avals[r][0] if isinstance(r, int) else np.shape(r.value)
