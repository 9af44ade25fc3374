"""Features and engine of the structured empirical NTK: the jit-compiled functions that compute it.

Holds the per-example features of each recognised product (:func:`_conv_patches`,
:func:`_item_inputs`, :func:`_item_signal`, :func:`_linear_gradient`), :class:`_Engine` (features of
a block of rows in one backward pass, and the kernel of two blocks), :func:`_gram_term`, and the
memory rule that sizes the row blocks (:func:`_rows`). The math is in the docstring of
:mod:`pytest_ntk.science.empirical.structured`.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._analysis import _Analysed, _conv_dims, _dense_dims, _Item, _Linear, _size
from ._program import _Const, _operand_shape, _run


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
        self.put = jax.jit(_put, donate_argnums=0)

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

    def features_in_chunks(self, leaves, xb, micro: int, valid: int | None = None):
        """:meth:`features` of ``xb`` (rows a multiple of ``micro``), ``micro`` rows at a time, each
        chunk written in place into one zeroed buffer: at most the block's features, one chunk's
        features and one chunk's transient work exist at once. Chunks past the first ``valid`` rows
        (zero padding) are not computed: their rows stay zero, which is what the padding's
        features contribute to no kernel entry that is kept. Each chunk is waited for: dispatched
        asynchronously, the chunks would run side by side, each with its transient work."""
        rows = xb.shape[0]
        valid = rows if valid is None else valid
        if micro >= rows:
            return self.features(leaves, xb)
        shapes = jax.eval_shape(self.features, leaves, xb)
        out = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
        for start in range(0, valid, micro):
            part = self.features(leaves, xb[start:start + micro])
            out = jax.block_until_ready(self.put(out, part, start))
            del part
        return out

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


def _put(buffer, part, start):
    """``buffer`` with ``part`` written at row ``start`` of every leaf (in place when donated)."""
    return jax.tree_util.tree_map(lambda b, p: lax.dynamic_update_slice_in_dim(b, p, start, 0), buffer, part)


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


#: Share of ``memory_budget`` that the transient work of the rows computed at once may take.
TRANSIENT_SHARE = 1 / 8


def _rows(an, itemsize, outputs, batch_size, budget) -> tuple[int, int]:
    """``(rows, micro)``: rows per block and rows whose features are computed at once.

    ``micro`` is the most rows (at most ``rows``, at least one) whose transient work, as estimated
    from the traced program (:func:`_row_bytes`), fits ``TRANSIENT_SHARE * budget``; ``rows`` is
    halved from ``batch_size`` until the stored features of two blocks, the transient work of
    ``micro`` rows and the position-pair Grams of a block pair fit ``budget``, then rounded down to a
    multiple of ``micro``. Where the transient work is larger than
    the stored features (convolutions: patches and activations at every position), this keeps the
    peak near the features themselves instead of the transient work of a whole block."""
    stored, transient = _row_bytes(an, itemsize)
    pair = _pair_bytes(an, itemsize, outputs)
    share = max(1, int(budget * TRANSIENT_SHARE) // max(1, transient))
    b = max(1, batch_size)
    while b > 1 and 2 * b * stored + min(b, share) * transient + b * b * pair > budget:
        b = max(1, b // 2)
    micro = min(b, share)
    return b // micro * micro, micro
