"""Fused SGD for ensembles of :class:`~pytest_ntk.science.nets.FullyConnected` networks.

The same training as the reference program of :mod:`pytest_ntk.science.train` (same initial
parameters, same minibatch order, same loss and update; equal up to float32 round-off), written
for the CPU, where an ensemble step of small networks is dominated by overheads rather than by
arithmetic (the reference program: about 7% of the machine's float32 matrix-product rate for 50
members of width 256). What this module does instead:

- the members are a leading *member axis* ``g`` of every weight, and each layer is one batched
  matrix product over it (``einsum('gbi,gio->gbo')``, run by oneDNN) instead of a ``vmap`` of small
  products;
- the backward pass is written out. With ``z^l = alpha_l h^{l-1} W^l + beta_l b^l``,
  ``h^l = phi(z^l)`` (``h^0 = x``), ``f = z^L`` and the batch loss
  ``L = 1/(2B) sum_{b,k} (f_bk - y_bk)^2``::

      g^L     = (f - y) / B                               (dL/dz^L, shape (B, k))
      dL/dW^l = alpha_l (h^{l-1})^T g^l                    (fan_in x fan_out)
      dL/db^l = beta_l sum_b g^l_b
      g^{l-1} = phi'(z^{l-1}) * (alpha_l g^l (W^l)^T)     (with W^l before its update)

  and SGD applies ``W^l <- W^l - (lr alpha_l h^{l-1})^T g^l``, a rank-``B`` update computed as
  ``B`` outer products fused into one pass over ``W^l`` (``B <= 16``; a matrix product for larger
  batches); ``b^l <- b^l - lr dL/db^l``. Heavy-ball momentum keeps ``v <- mu v + grad`` and applies
  ``theta <- theta - lr v``. ``phi'`` is JAX's derivative of the activation (``jax.vjp``), as in
  the reference program. Contractions over a small fan-in (the input layer, ``d <= 32``) are
  unrolled into ``d`` fused multiply-adds, much cheaper than a matrix-product call;
- one gather per epoch: each member's permutation of its ``n`` points (``jax.random.permutation``
  of ``fold_in(data_key, epoch)``, as in the reference program) is drawn at the start of the epoch
  and the epoch's ``n // B`` batches are gathered at once; a ``lax.scan`` walks through them;
- per-step losses stay in the program: each epoch's losses are added into their ``record_every``
  windows and the first non-finite loss of each member (step and value) is found once per epoch
  from the same array, so a divergence is reported at its exact step without a check per step;
- on a CPU, members train in groups whose weights fit in :data:`GROUP_BYTES` (each group all its
  steps, one group after the other), so that the weights stay in cache from step to step, and the
  program is compiled for XLA's whole-program CPU runtime (``xla_cpu_use_thunk_runtime=False``,
  :func:`cpu_compiler_options`), which runs the batched products through oneDNN and the fused loops
  two to four times faster than the per-operation thunk runtime of jaxlib 0.4.3x-0.5.x. Where the
  option does not exist, the default runtime is used.

Training data may be shared by all members (``x`` (1, n, d)) or per member (``x`` (S, n, d),
independent problems): member ``s`` trains on ``x[s]``, ``y[s]`` with its own seed.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from .activations import ACTIVATIONS
from .nets import FullyConnected

__all__ = ["FastConfig", "supports", "get_program"]

#: Largest fan-in whose forward contraction is unrolled into fused multiply-adds.
SMALL_FAN_IN = 32
#: Largest batch whose weight update is written as fused outer products instead of a matrix product.
SMALL_BATCH = 16
#: Steps per iteration of the compiled step loop (``lax.scan(..., unroll=UNROLL)``).
UNROLL = 1
#: Full-batch gradient descent runs in chunks of this many steps between bookkeeping.
FULL_BATCH_CHUNK = 64
#: On a CPU, members train in groups whose weights take at most this many bytes (one group after
#: the other, each for all its steps), so that a group's weights stay in cache between steps.
GROUP_BYTES = 24 << 20


@dataclass(frozen=True)
class FastConfig:
    """Static shape of one fused training program (a cache key)."""

    n: int
    batch: int  # == n for full-batch gradient descent
    shuffle: bool  # False: full batch, the points in their order
    batches_per_epoch: int
    steps: int
    record_every: int
    momentum: bool
    shared_data: bool  # x, y carry one set for all members (leading axis 1)
    unroll: int = UNROLL
    group: int = 1 << 30  # members trained together; groups run one after the other


def supports(model, modes) -> bool:
    """Whether the fused path trains ``model`` in these modes: plain :class:`FullyConnected`
    networks (not subclasses, which may change ``apply``), not their linearisations."""
    return type(model) is FullyConnected and tuple(modes) == ("network",)


def group_size(members: int, bytes_per_member: int) -> int:
    """Members per group: the largest divisor of ``members`` whose weights fit in
    :data:`GROUP_BYTES` (at least 1); all members at once off the CPU."""
    if jax.default_backend() != "cpu":
        return members
    fits = max(1, GROUP_BYTES // max(1, bytes_per_member))
    return max(g for g in range(1, members + 1) if members % g == 0 and g <= fits)


# ---------------------------------------------------------------------------- one step
def _forward_contract(h, W):
    """``z[g, b, o] = sum_i h[g, b, i] W[g, i, o]``."""
    fan_in = W.shape[1]
    if fan_in <= SMALL_FAN_IN:
        z = h[:, :, 0, None] * W[:, None, 0, :]
        for i in range(1, fan_in):
            z = z + h[:, :, i, None] * W[:, None, i, :]
        return z
    return jnp.einsum("gbi,gio->gbo", h, W)


def _rank_b(h, g):
    """``sum_b h[g, b, :]^T g[g, b, :]``, shape (G, fan_in, fan_out)."""
    B = h.shape[1]
    if B <= SMALL_BATCH:
        acc = h[:, 0, :, None] * g[:, 0, None, :]
        for b in range(1, B):
            acc = acc + h[:, b, :, None] * g[:, b, None, :]
        return acc
    return jnp.einsum("gbi,gbo->gio", h, g)


def _make_step(model: FullyConnected, d: int, batch: int):
    phi = ACTIVATIONS[model.activation]
    sizes = model.layer_sizes(d)
    scales = [tuple(float(s) for s in model.scales(fan_in)) for fan_in in sizes[:-1]]
    L = len(sizes) - 1

    def step(state, xb, yb, lr, mu):
        """One SGD step of all members. ``state = (params, velocity or None)``; ``xb`` (G, B, d),
        ``yb`` (G, B, k). Returns the new state and the per-member batch loss (before the update)."""
        params, vel = state
        hs, vjps = [xb], []
        h = xb
        for l, layer in enumerate(params):
            a, c = scales[l]
            z = a * _forward_contract(h, layer["W"]) + c * layer["b"][:, None, :]
            if l < L - 1:
                h, vjp = jax.vjp(phi, z)
                hs.append(h)
                vjps.append(vjp)
        r = z - yb
        loss = 0.5 * jnp.sum(r * r, axis=(1, 2)) / batch
        g = r * (1.0 / batch)  # dL/dz^L
        new_params, new_vel = [None] * L, [None] * L
        for l in reversed(range(L)):
            W, b = params[l]["W"], params[l]["b"]
            a, c = scales[l]
            if l > 0:
                # dL/dh^{l-1} / alpha_l, from the old W. Written as W g^T (W the left operand, its
                # rows contiguous), which oneDNN runs faster than g W^T.
                dh = jnp.einsum("gio,gbo->gib", W, g).transpose(0, 2, 1)
            gb = c * jnp.sum(g, axis=1)
            # The scale goes on h (read once per row of W by the fused update), not on g (read
            # once per element of W). It divides by the reciprocal: XLA does not fuse a division
            # into a consumer that reads each element many times, so h is computed once instead of
            # once per row of W (a multiply would be fused, and with it the whole forward pass that
            # produced h). Round-off: at most one ulp from h * scale.
            hu = hs[l] / (1.0 / (lr * a) if vel is None else lr / (lr * a))
            if l > 0:
                # A data dependency of the update on dh (adding zeros): without it XLA cannot prove
                # that the product reading the old W runs before W is overwritten in place, and
                # copies all of W every step. dh is non-finite only when this step's loss already
                # is (non-finite g or W), so the reported divergence is unchanged.
                hu = hu + 0.0 * dh[:, :1, :1]
            if vel is None:
                W = W - _rank_b(hu, g)
                b = b - lr * gb
            else:
                vW = mu * vel[l]["W"] + _rank_b(hu, g)
                vb = mu * vel[l]["b"] + gb
                W, b = W - lr * vW, b - lr * vb
                new_vel[l] = {"W": vW, "b": vb}
            new_params[l] = {"W": W, "b": b}
            if l > 0:
                g = vjps[l - 1](a * dh)[0]
        return (new_params, None if vel is None else new_vel), loss

    return step


# ---------------------------------------------------------------------------- the program
def _build(model: FullyConnected, cfg: FastConfig, d: int):

    def program(params, data_keys, x, y, lr, mu):
        S = data_keys.shape[0]
        G = cfg.group
        if G < S:
            # Groups of G members train one after the other (each group all its steps), so that a
            # group's weights stay in cache from one step to the next.
            def split(tree):
                return jax.tree_util.tree_map(lambda a: a.reshape((S // G, G) + a.shape[1:]), tree)

            sub = dataclasses.replace(cfg, group=1 << 30)
            one = _build_members(model, sub, d)
            if cfg.shared_data:
                out = jax.lax.map(lambda a: one(a[0], a[1], x, y, lr, mu), (split(params), split(data_keys)))
            else:
                out = jax.lax.map(lambda a: one(*a, lr, mu), (split(params), split(data_keys), split(x), split(y)))
            return jax.tree_util.tree_map(lambda a: a.reshape((S,) + a.shape[2:]), out)
        return _build_members(model, cfg, d)(params, data_keys, x, y, lr, mu)

    return program


def _build_members(model: FullyConnected, cfg: FastConfig, d: int):
    B, n, nb = cfg.batch, cfg.n, cfg.batches_per_epoch
    step = _make_step(model, d, B)
    n_records = -(-cfg.steps // cfg.record_every)

    def program(params, data_keys, x, y, lr, mu):
        S = data_keys.shape[0]
        k = y.shape[-1]
        vel = jax.tree_util.tree_map(jnp.zeros_like, params) if cfg.momentum else None

        def batches(epoch, count):
            """The first ``count`` batches of ``epoch``: xs (count, S, B, d), ys (count, S, B, k)."""
            if not cfg.shuffle:
                return None
            keys = jax.vmap(lambda key: jax.random.fold_in(key, epoch))(data_keys)
            perm = jax.vmap(lambda key: jax.random.permutation(key, n))(keys).astype(jnp.int32)
            idx = perm[:, : count * B]
            if cfg.shared_data:
                xs, ys = x[0][idx], y[0][idx]
            else:
                xs = jnp.take_along_axis(x, idx[:, :, None], axis=1)
                ys = jnp.take_along_axis(y, idx[:, :, None], axis=1)
            xs = xs.reshape(S, count, B, d).transpose(1, 0, 2, 3)
            ys = ys.reshape(S, count, B, k).transpose(1, 0, 2, 3)
            return xs, ys

        full_x = jnp.broadcast_to(x, (S,) + x.shape[1:])
        full_y = jnp.broadcast_to(y, (S,) + y.shape[1:])

        def run_steps(state, first_step, count, data):
            if data is None:  # full batch: every step sees all points in order
                def body(st, _):
                    return step(st, full_x, full_y, lr, mu)
                return jax.lax.scan(body, state, None, length=count, unroll=cfg.unroll)

            def body(st, xy):
                return step(st, xy[0], xy[1], lr, mu)
            return jax.lax.scan(body, state, data, unroll=cfg.unroll)

        def book(carry_rest, first_step, losses):
            """Add a chunk of per-step losses (count, S) into the record windows; note the first
            non-finite loss of each member."""
            records, first_bad, bad_loss = carry_rest
            count = losses.shape[0]
            steps_idx = first_step + jnp.arange(count, dtype=jnp.int32)
            records = records.at[steps_idx // cfg.record_every].add(losses)
            bad = ~jnp.isfinite(losses)
            j = jnp.argmax(bad, axis=0)
            new = jnp.logical_and(jnp.any(bad, axis=0), first_bad < 0)
            first_bad = jnp.where(new, first_step + j.astype(jnp.int32), first_bad)
            bad_loss = jnp.where(new, losses[j, jnp.arange(S)], bad_loss)
            return records, first_bad, bad_loss

        chunk = nb if cfg.shuffle else min(cfg.steps, FULL_BATCH_CHUNK)
        n_chunks, rem = divmod(cfg.steps, chunk)

        def chunk_body(carry, e):
            state, rest = carry
            first_step = e * chunk
            state, losses = run_steps(state, first_step, chunk, batches(e, chunk))
            return (state, book(rest, first_step, losses)), None

        dtype = y.dtype
        rest = (jnp.zeros((n_records, S), dtype), jnp.full((S,), -1, jnp.int32), jnp.zeros((S,), dtype))
        carry = ((params, vel), rest)
        if n_chunks:
            carry, _ = jax.lax.scan(chunk_body, carry, jnp.arange(n_chunks, dtype=jnp.int32))
        if rem:
            state, rest = carry
            first_step = jnp.int32(n_chunks * chunk)
            state, losses = run_steps(state, first_step, rem, batches(jnp.int32(n_chunks), rem))
            carry = (state, book(rest, first_step, losses))
        (params, _), (records, first_bad, bad_loss) = carry

        lengths = jnp.minimum(cfg.record_every,
                              cfg.steps - jnp.arange(n_records, dtype=jnp.int32) * cfg.record_every)
        return {
            "params": params,
            "losses": (records / lengths[:, None].astype(dtype)).T,
            "first_bad": first_bad,
            "bad_loss": bad_loss,
        }

    return program


@functools.lru_cache(maxsize=1)
def cpu_compiler_options():
    """XLA options for the fused program on a CPU: ``{"xla_cpu_use_thunk_runtime": False}`` (the
    whole-program runtime) where this jaxlib knows the option; None off the CPU or where it does
    not."""
    if jax.default_backend() != "cpu":
        return None
    options = {"xla_cpu_use_thunk_runtime": False}
    try:
        jax.jit(lambda a: a + 1).lower(jnp.zeros(1)).compile(compiler_options=options)
    except Exception:  # an XLA without the whole-program CPU runtime
        return None
    return options


@functools.lru_cache(maxsize=64)
def _program(model, cfg: FastConfig, d: int):
    return jax.jit(_build(model, cfg, d), donate_argnums=(0,), compiler_options=cpu_compiler_options())


def get_program(model: FullyConnected, cfg: FastConfig, d: int):
    """The jitted fused program ``(params, data_keys, x, y, lr, momentum) -> dict`` (cached per
    model, configuration and input dimension). ``params`` (stacked over members) is donated. ``x``
    (1 or S, n, d), ``y`` (1 or S, n, k). The dict holds the trained ``params``, ``losses``
    (S, n_records), ``first_bad`` (S,) (the first step with a non-finite loss, -1 if none) and
    ``bad_loss`` (S,) (that loss).

    The outputs after training are not part of this program (the caller evaluates the network
    with ``model.apply``): besides being the same function as the reference path's, this keeps
    large products of the trained weights out of the program, which XLA's oneDNN rewriter fails
    to compile for a single member (jaxlib 0.5.3)."""
    return _program(model, cfg, d)
