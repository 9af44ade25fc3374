"""Training an ensemble of networks, or of their linearizations, on MSE as one compiled program.

Loss (the normalisation of :mod:`pytest_ntk.science.predict`): on a batch ``b`` of ``B`` points,

    L_b(theta) = 1/(2B) * sum_{i in b} ||f(theta, x_i) - y_i||^2 ,

with ``B = n`` (all training points) for full-batch gradient descent. Update, heavy-ball momentum
``mu`` (``mu = 0``: plain gradient descent / SGD; then no velocity is stored)::

    v     <- mu * v + grad L_b(theta)
    theta <- theta - lr * v

For the linearized model and full batches the outputs move by ``-(lr/n) Theta (f - y)`` with the
NTK ``Theta = J J^T`` at initialisation, which is what :func:`pytest_ntk.science.predict.gradient_descent_mse`
predicts at time ``t = lr * steps``.

The ensemble is ``jax.vmap`` over seeds of one training run, which is a ``jax.lax.scan`` over
steps inside ``jax.jit``: all seeds train as a single XLA program. Seed ``s`` draws its initial
parameters from ``model.init(jax.random.PRNGKey(s), d, dtype)`` and its minibatch order from the
independent stream ``jax.random.fold_in(jax.random.PRNGKey(s), SHUFFLE_STREAM)``.

Minibatch SGD (``batch_size < n``): each epoch draws a fresh permutation of the n points and takes
``n // batch_size`` consecutive batches of exactly ``batch_size`` points from it; the last
``n % batch_size`` points of each permutation are dropped for that epoch (a different subset each
epoch), so every step sees a batch of the same size and the same loss normalisation.

Independent problems (:func:`train_problems`): member ``s`` has its own data ``x[s]``, ``y[s]``,
``x_eval[s]`` as well as its own seed; everything else is as above, member by member.

Two implementations compute the same training (equal up to float32 round-off): the *reference*
program described above (any model, the linearisation too), and the *fused* program of
:mod:`pytest_ntk.science.sgd_fast` (hand-written forward and backward passes of
:class:`~pytest_ntk.science.nets.FullyConnected` over a member axis, one gather per epoch, several
times faster on a CPU). ``method="reference"`` is the default: the claims' committed verdicts were
measured with it, and the fused program (which compiles for XLA's legacy CPU runtime) is opt-in
until the audit has been rerun and compared on it. ``method="auto"`` takes the fused program where
it applies.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import sgd_fast
from .adapters import as_model
from .errors import NumericalError, TrainingDiverged
from .numerics import x64

__all__ = [
    "TrainResult",
    "TrainPair",
    "train",
    "train_pair",
    "train_problems",
    "ntk_max_eigenvalue",
    "SHUFFLE_STREAM",
]

#: ``fold_in`` constant separating a seed's minibatch-order stream from its initialisation key.
SHUFFLE_STREAM = 0x5EED_DA7A

_NETWORK, _LINEARIZED = "network", "linearized"
METHODS = ("auto", "reference", "fused")


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class TrainResult:
    """What one :func:`train` call produced, stacked over ``seeds`` (axis 0 everywhere).

    ``params``: final parameters (a pytree of JAX arrays with a leading seed axis). For a
    linearized run these are ``theta0 + delta``, the parameters of ``f_lin`` (``params0`` holds
    ``theta0``, needed to evaluate it).
    ``losses``: (n_seeds, n_records) float64; record ``r`` is the mean of the per-step losses of
    steps ``r*record_every .. (r+1)*record_every - 1`` (each evaluated on that step's batch before
    its update; the last window may be shorter). Full batch and ``record_every=1``: ``L(theta_s)``.
    ``record_steps``: (n_records,) first step of each window.
    ``final_loss``: (n_seeds,) float64 full-data loss ``L(theta_steps)`` after the last update.
    ``f0_train``/``f0_test``: outputs at initialisation on ``x``/``x_eval`` (float64, for centring);
    ``f_train``/``f_test``: outputs after training. ``f0_test``/``f_test`` are None without ``x_eval``.
    ``lr``: the learning rate used; ``critical_lr``: ``2 n / lambda_max(Theta_0)`` of the first
    seed when ``lr_fraction`` was given, else None. ``method``: the program that trained,
    ``"reference"`` or ``"fused"``.
    """

    params: Any
    losses: np.ndarray
    record_steps: np.ndarray
    final_loss: np.ndarray
    f0_train: np.ndarray
    f0_test: np.ndarray | None
    f_train: np.ndarray
    f_test: np.ndarray | None
    lr: float
    critical_lr: float | None
    steps: int
    epochs: int | None
    batch_size: int | None
    momentum: float
    record_every: int
    seeds: tuple[int, ...]
    linearized: bool = False
    params0: Any = field(default=None, repr=False)
    method: str = "reference"


@dataclass(frozen=True, eq=False)
class TrainPair:
    """A network and its linearization trained from the same init on the same batches."""

    network: TrainResult
    linearized: TrainResult


# ---------------------------------------------------------------------------- validation
def _int_at_least(name: str, value, minimum: int) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if isinstance(value, bool) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(v)


def _positive_float(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def _seeds(seeds) -> tuple[int, ...]:
    if seeds is None or isinstance(seeds, (int, np.integer)):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    out = []
    for s in seeds:
        if isinstance(s, bool):
            raise ValueError(f"seeds must be integers, got {s!r}")
        try:
            out.append(int(operator.index(s)))
        except TypeError:
            raise ValueError(f"seeds must be integers, got {s!r} in {seeds!r}") from None
    if not out:
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct (identical seeds train identical members), got {out!r}")
    return tuple(out)


def _data(name: str, value, dtype, ndim) -> jnp.ndarray:
    arr = np.asarray(value)
    if arr.ndim not in ndim:
        raise ValueError(f"{name} must be {' or '.join(f'{d}-D' for d in ndim)}, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite real array (shape {arr.shape}, dtype {arr.dtype})")
    return jnp.asarray(arr, dtype=dtype)


# ---------------------------------------------------------------------------- the program
@dataclass(frozen=True)
class _Config:
    n: int
    batch: int | None  # None: full batch
    batches_per_epoch: int
    steps: int
    record_every: int
    momentum: bool
    modes: tuple[str, ...]
    has_eval: bool
    shared_data: bool = True  # False: x, y, x_eval carry a leading member axis


def _mse(residual, size):
    return 0.5 * jnp.sum(residual * residual) / size


def _member(model, cfg: _Config, theta0, f0_train, f0_test, data_key, x, y, x_eval, lr, momentum):
    """One seed's whole training run (vmapped over seeds by :func:`_program`)."""
    apply = model.apply
    B = cfg.batch or cfg.n
    tree_map = jax.tree_util.tree_map

    if _LINEARIZED in cfg.modes and cfg.batch is None:
        # Full batch: linearize once; the residuals of the forward pass at theta0 are constants
        # of the scan body, so a step costs one jvp and one transposed jvp.
        _, jvp_full = jax.linearize(lambda p: apply(p, x), theta0)
        vjp_full = jax.linear_transpose(jvp_full, theta0)

    def zeros():
        return tree_map(jnp.zeros_like, theta0)

    states = {}
    for mode in cfg.modes:
        # The network carries theta itself; the linearization carries delta = theta - theta0.
        p = theta0 if mode == _NETWORK else zeros()
        states[mode] = (p, zeros() if cfg.momentum else None)
    first_bad = {mode: jnp.int32(-1) for mode in cfg.modes}
    bad_loss = {mode: jnp.zeros((), f0_train.dtype) for mode in cfg.modes}
    perm = jnp.arange(cfg.n, dtype=jnp.int32)

    def step(carry, s):
        states, perm, first_bad, bad_loss = carry
        if cfg.batch is None:
            xb, yb = x, y
        else:
            b = s % cfg.batches_per_epoch
            epoch = s // cfg.batches_per_epoch
            perm = jax.lax.cond(
                b == 0,
                lambda p: jax.random.permutation(jax.random.fold_in(data_key, epoch), cfg.n).astype(jnp.int32),
                lambda p: p,
                perm,
            )
            idx = jax.lax.dynamic_slice_in_dim(perm, b * B, B)
            xb, yb = x[idx], y[idx]
        new_states, losses, new_first, new_bad = {}, {}, {}, {}
        for mode in cfg.modes:
            params, vel = states[mode]
            if mode == _NETWORK:
                loss, grad = jax.value_and_grad(lambda p: _mse(apply(p, xb) - yb, B))(params)
            else:
                if cfg.batch is None:
                    f0b, jvp, vjp = f0_train, jvp_full, vjp_full
                else:
                    f0b, jvp = jax.linearize(lambda p: apply(p, xb), theta0)
                    vjp = jax.linear_transpose(jvp, theta0)
                residual = f0b + jvp(params) - yb
                loss = _mse(residual, B)
                (grad,) = vjp(residual / B)
            if cfg.momentum:
                vel = tree_map(lambda v, g: momentum * v + g, vel, grad)
                grad = vel
            params = tree_map(lambda p, g: p - lr * g, params, grad)
            new_states[mode] = (params, vel)
            # Every step is checked, so a NaN cannot hide between two records.
            bad_now = jnp.logical_and(~jnp.isfinite(loss), first_bad[mode] < 0)
            new_first[mode] = jnp.where(bad_now, s, first_bad[mode])
            new_bad[mode] = jnp.where(bad_now, loss, bad_loss[mode])
            losses[mode] = loss
        return (new_states, perm, new_first, new_bad), losses

    def window(carry, start, length):
        carry, losses = jax.lax.scan(step, carry, start + jnp.arange(length, dtype=jnp.int32))
        return carry, {mode: jnp.mean(l) for mode, l in losses.items()}

    carry = (states, perm, first_bad, bad_loss)
    n_full, rem = divmod(cfg.steps, cfg.record_every)
    records = []
    if n_full:
        carry, recs = jax.lax.scan(
            lambda c, s0: window(c, s0, cfg.record_every),
            carry,
            jnp.arange(n_full, dtype=jnp.int32) * cfg.record_every,
        )
        records.append(recs)
    if rem:
        carry, recs = window(carry, jnp.int32(n_full * cfg.record_every), rem)
        records.append({mode: l[None] for mode, l in recs.items()})
    states, _, first_bad, bad_loss = carry

    out = {}
    for mode in cfg.modes:
        params = states[mode][0]
        if mode == _NETWORK:
            f_train = apply(params, x)
            f_test = apply(params, x_eval) if cfg.has_eval else None
        else:
            f_train = f0_train + jax.jvp(lambda p: apply(p, x), (theta0,), (params,))[1]
            f_test = (
                f0_test + jax.jvp(lambda p: apply(p, x_eval), (theta0,), (params,))[1]
                if cfg.has_eval
                else None
            )
            params = tree_map(jnp.add, theta0, params)
        out[mode] = {
            "params": params,
            "losses": jnp.concatenate([r[mode] for r in records]),
            "first_bad": first_bad[mode],
            "bad_loss": bad_loss[mode],
            "f_train": f_train,
            "f_test": f_test,
            "final_loss": _mse(f_train - y, cfg.n),
        }
    if _LINEARIZED in cfg.modes:
        out["params0"] = theta0
    return out


@functools.lru_cache(maxsize=64)
def _program(model, cfg: _Config):
    """The jitted, seed-vmapped training program (cached per model and static configuration).

    The stacked initial parameters (argument 0) are donated: the program owns them, and XLA may
    write the trained parameters into the same buffers.
    """

    data_axis = None if cfg.shared_data else 0

    def program(theta0, f0_train, f0_test, data_keys, x, y, x_eval, lr, momentum):
        member = functools.partial(_member, model, cfg)
        axes = (0, 0, 0, 0, data_axis, data_axis, data_axis, None, None)
        return jax.vmap(member, in_axes=axes)(theta0, f0_train, f0_test, data_keys, x, y, x_eval, lr, momentum)

    return jax.jit(program, donate_argnums=(0,))


@functools.lru_cache(maxsize=64)
def _outputs_program(model, shared_data=True):
    """``(stacked params, x) -> stacked outputs``. The outputs at initialisation are computed by this
    separate program: reading the donated parameters inside the training program before the scan
    overwrites them in place would make XLA keep a copy of all weights. ``x`` is one set of inputs
    (``shared_data``) or a set per member."""
    return jax.jit(jax.vmap(model.apply, in_axes=(0, None if shared_data else 0)))


def _get_outputs_program(model, shared_data=True):
    try:
        hash(model)
    except TypeError:
        return _outputs_program.__wrapped__(model, shared_data)
    return _outputs_program(model, shared_data)


def _get_program(model, cfg):
    try:
        hash(model)
    except TypeError:  # unhashable model: build without the cache
        return _program.__wrapped__(model, cfg)
    return _program(model, cfg)


# ---------------------------------------------------------------------------- NTK spectrum
@functools.partial(jax.jit, static_argnums=(0,))
def _power_iteration(model, params, x, v0, max_iter, rtol):
    f = lambda p: model.apply(p, x)  # noqa: E731
    _, jvp = jax.linearize(f, params)
    vjp = jax.linear_transpose(jvp, params)

    def ntk_mv(v):  # Theta v = J (J^T v)
        return jvp(vjp(v)[0])

    def body(state):
        i, v, rho, res = state
        w = ntk_mv(v)
        rho = jnp.vdot(v, w)  # v has unit norm
        res = jnp.linalg.norm(w - rho * v) / jnp.maximum(jnp.abs(rho), jnp.finfo(v.dtype).tiny)
        v = w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(v.dtype).tiny)
        return i + 1, v, rho, res

    def cond(state):
        i, _, _, res = state
        return jnp.logical_and(i < max_iter, res > rtol)

    v0 = v0 / jnp.linalg.norm(v0)
    init = (jnp.int32(0), v0, jnp.zeros((), v0.dtype), jnp.asarray(jnp.inf, v0.dtype))
    i, _, rho, res = jax.lax.while_loop(cond, body, init)
    return rho, res, i


def ntk_max_eigenvalue(model, params, x, *, max_iter: int = 2000, rtol: float = 1e-8) -> float:
    """Largest eigenvalue of the empirical NTK ``Theta = J J^T`` of ``params`` on ``x`` (float64).

    Matrix-free power iteration with ``Theta v = J (J^T v)`` (a transposed jvp then a jvp), so no
    Jacobian or kernel is stored. Stops when the residual ``||Theta v - rho v|| / rho`` is below
    ``rtol``; the Rayleigh quotient ``rho`` then has relative error about ``rtol^2 * lambda_max /
    gap``. The start vector is ``1 + 0.1 * N(0, 1)`` (fixed key), which is close to the top
    eigenvector of the NTK of a net with biases. Multi-output nets are handled whole: ``Theta`` is
    then the ``(n k, n k)`` kernel over points and outputs.
    """
    with x64():
        params64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64_ = jnp.asarray(x, jnp.float64)
        out = jax.eval_shape(model.apply, params64, x64_)
        v0 = 1.0 + 0.1 * jax.random.normal(jax.random.PRNGKey(0), out.shape, jnp.float64)
        rho, res, its = _power_iteration(model, params64, x64_, v0, jnp.int32(max_iter), jnp.float64(rtol))
        rho, res, its = float(rho), float(res), int(its)
    if not np.isfinite(rho) or rho <= 0:
        raise NumericalError(f"ntk_max_eigenvalue: power iteration gave lambda_max = {rho!r}")
    if res > rtol:
        warnings.warn(
            f"ntk_max_eigenvalue: power iteration stopped after {its} iterations with relative "
            f"residual {res:.2e} > rtol={rtol:.1e}; lambda_max ~ {rho:.6g} is a lower bound",
            RuntimeWarning,
            stacklevel=2,
        )
    return rho


# ---------------------------------------------------------------------------- public API
@functools.lru_cache(maxsize=64)
def _init_program(model, d, dtype):
    """``keys (S, 2) -> params stacked over S``: ``model.init`` vmapped over the seeds' keys."""
    return jax.jit(jax.vmap(lambda k: model.init(k, d, dtype)))


def _resolve_params(model, params, seeds, d, dtype):
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    single = jax.eval_shape(lambda k: model.init(k, d, dtype), keys[0])
    if params is None:
        try:
            hash(model)
            init = _init_program(model, d, dtype)
        except TypeError:
            init = _init_program.__wrapped__(model, d, dtype)
        return init(keys), keys
    given = jax.tree_util.tree_map(lambda a: np.shape(a), params)
    s_leaves, treedef = jax.tree_util.tree_flatten(single)
    try:
        g_leaves = treedef.flatten_up_to(params)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"params does not have the structure of model.init's parameters: {exc}") from None
    n = len(seeds)
    if all(np.shape(g) == s.shape for g, s in zip(g_leaves, s_leaves)):
        stacked = [jnp.broadcast_to(jnp.asarray(g, dtype), (n,) + s.shape) for g, s in zip(g_leaves, s_leaves)]
    elif all(np.shape(g) == (n,) + s.shape for g, s in zip(g_leaves, s_leaves)):
        stacked = [jnp.asarray(g, dtype) for g in g_leaves]
    else:
        raise ValueError(
            f"params must be one set of initial parameters (shared by all seeds) or a set stacked over "
            f"the {n} seeds; got leaf shapes {given}"
        )
    for g in stacked:
        if not bool(jnp.all(jnp.isfinite(g))):
            raise ValueError("params contains non-finite values")
    # Our own buffers (the program donates them), never the caller's arrays.
    return jax.tree_util.tree_unflatten(treedef, [jnp.array(g, copy=True) for g in stacked]), keys


def _train(model, x, y, *, seeds, steps, epochs, lr, lr_fraction, batch_size, momentum, record_every,
           dtype, params, modes, x_eval, per_member=False, method="auto"):
    model = as_model(model, strict=False)  # Flax, Equinox, stax: wrapped (pytest_ntk.science.adapters)
    seeds = _seeds(seeds)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if (lr is None) == (lr_fraction is None):
        raise ValueError(
            f"give exactly one of lr (absolute) and lr_fraction (of the critical rate); got lr={lr!r}, "
            f"lr_fraction={lr_fraction!r}"
        )
    if lr is not None:
        lr = _positive_float("lr", lr)
    else:
        lr_fraction = _positive_float("lr_fraction", lr_fraction)
    try:
        momentum = float(momentum)
    except (TypeError, ValueError):
        raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}") from None
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    record_every = _int_at_least("record_every", record_every, 1)

    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype!r}")
    scope = x64() if dtype == jnp.dtype(jnp.float64) else contextlib.nullcontext()
    with scope:
        # Per-member data carry a leading member axis; `lead` is its shape (empty when shared).
        lead = (len(seeds),) if per_member else ()
        k = len(lead)
        x = _data("x", x, dtype, (2 + k,))
        if per_member and x.shape[0] != len(seeds):
            raise ValueError(f"x must hold one data set per seed: {len(seeds)} seeds, x has shape {x.shape}")
        n, d = x.shape[k:]
        if n == 0:
            raise ValueError("x has no rows")
        y = _data("y", y, dtype, (1 + k, 2 + k))
        if tuple(y.shape[: 1 + k]) != lead + (n,):
            raise ValueError(f"x and y must have the same number of rows: x has {n}, y has shape {y.shape}")
        if x_eval is not None:
            x_eval = _data("x_eval", x_eval, dtype, (2 + k,))
            if x_eval.shape[-1] != d or tuple(x_eval.shape[:k]) != lead:
                raise ValueError(f"x_eval must have d = {d} columns like x (and x's leading axes), "
                                 f"got shape {x_eval.shape}")

        if batch_size is not None:
            batch_size = _int_at_least("batch_size", batch_size, 1)
        full = batch_size is None or batch_size >= n
        batches_per_epoch = 1 if full else n // batch_size
        if (steps is None) == (epochs is None):
            raise ValueError(f"give exactly one of steps and epochs; got steps={steps!r}, epochs={epochs!r}")
        if steps is not None:
            steps = _int_at_least("steps", steps, 1)
        else:
            epochs = _int_at_least("epochs", epochs, 1)
            steps = epochs * batches_per_epoch

        theta0, keys = _resolve_params(model, params, seeds, d, dtype)
        x_first = x[0] if per_member else x
        out_shape = jax.eval_shape(model.apply, jax.tree_util.tree_map(lambda a: a[0], theta0), x_first).shape
        if tuple(y.shape[k:]) != tuple(out_shape):
            raise ValueError(f"y must have the shape of the network's outputs on x, {lead + tuple(out_shape)}; "
                             f"got {tuple(y.shape)}")

        crit = None
        if lr_fraction is not None:
            first = jax.tree_util.tree_map(lambda a: a[0], theta0)
            crit = 2.0 * n / ntk_max_eigenvalue(model, first, x_first)
            lr = lr_fraction * crit

        data_keys = jax.vmap(lambda kk: jax.random.fold_in(kk, SHUFFLE_STREAM))(keys)
        outputs = _get_outputs_program(model, not per_member)
        f0_train_dev = outputs(theta0, x)
        f0_test_dev = outputs(theta0, x_eval) if x_eval is not None else None
        fused = method != "reference" and sgd_fast.supports(model, modes)
        if method == "fused" and not fused:
            raise ValueError(f"method='fused' trains plain FullyConnected networks only (not their "
                             f"linearisation); got {type(model).__name__} in modes {modes}")
        with warnings.catch_warnings():
            # Backends without buffer donation (older CPU clients) only warn; nothing is wrong.
            warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
            if fused:
                out = {_NETWORK: _run_fused(model, theta0, data_keys, x, y, x_eval, lr, momentum, dtype, per_member,
                                            n=n, d=d, full=full, batch_size=batch_size,
                                            batches_per_epoch=batches_per_epoch, steps=steps,
                                            record_every=record_every)}
            else:
                cfg = _Config(
                    n=n,
                    batch=None if full else batch_size,
                    batches_per_epoch=batches_per_epoch,
                    steps=steps,
                    record_every=record_every,
                    momentum=momentum != 0.0,
                    modes=modes,
                    has_eval=x_eval is not None,
                    shared_data=not per_member,
                )
                out = _get_program(model, cfg)(theta0, f0_train_dev, f0_test_dev, data_keys, x, y, x_eval,
                                               jnp.asarray(lr, dtype), jnp.asarray(momentum, dtype))

        def f64(a):
            return None if a is None else np.asarray(a, dtype=np.float64)

        f0_train, f0_test = f64(f0_train_dev), f64(f0_test_dev)
        n_records = -(-steps // record_every)
        record_steps = np.arange(n_records) * record_every
        results = {}
        for mode in modes:
            o = out[mode]
            final_loss = f64(o["final_loss"])
            _check_diverged(mode, modes, seeds, lr, crit, steps, np.asarray(o["first_bad"]),
                            f64(o["bad_loss"]), final_loss)
            f_train, f_test = f64(o["f_train"]), f64(o["f_test"])
            for name, arr in (("f_train", f_train), ("f_test", f_test), ("f0_test", f0_test)):
                if arr is not None and not np.all(np.isfinite(arr)):
                    raise NumericalError(f"train: {name} of the {mode} is not finite although the loss is (lr={lr:.6g})")
            results[mode] = TrainResult(
                params=o["params"],
                losses=f64(o["losses"]),
                record_steps=record_steps,
                final_loss=final_loss,
                f0_train=f0_train,
                f0_test=f0_test,
                f_train=f_train,
                f_test=f_test,
                lr=float(lr),
                critical_lr=crit,
                steps=steps,
                epochs=epochs,
                batch_size=None if full else batch_size,
                momentum=momentum,
                record_every=record_every,
                seeds=seeds,
                linearized=mode == _LINEARIZED,
                params0=out["params0"] if mode == _LINEARIZED else None,
                method="fused" if fused else "reference",
            )
    return results


def _run_fused(model, theta0, data_keys, x, y, x_eval, lr, momentum, dtype, per_member, *, n, d, full, batch_size,
               batches_per_epoch, steps, record_every):
    """Train with :mod:`.sgd_fast`; returns the reference program's output dict for the network."""
    def lead(a):  # the fused program wants a member axis (1 when shared) and a trailing output axis
        return a if per_member else a[None]

    vector = y.ndim == (2 if per_member else 1)  # one output: apply returns (n,), not (n, 1)
    cfg = sgd_fast.FastConfig(
        n=n,
        batch=n if full else batch_size,
        shuffle=not full,
        batches_per_epoch=batches_per_epoch,
        steps=steps,
        record_every=record_every,
        momentum=momentum != 0.0,
        shared_data=not per_member,
        group=sgd_fast.group_size(len(data_keys), dtype.itemsize * model.n_params(d)),
    )
    o = sgd_fast.get_program(model, cfg, d)(theta0, data_keys, lead(x), lead(y[..., None] if vector else y),
                                            jnp.asarray(lr, dtype), jnp.asarray(momentum, dtype))
    outputs = _get_outputs_program(model, not per_member)
    o["f_train"] = outputs(o["params"], x)
    o["f_test"] = outputs(o["params"], x_eval) if x_eval is not None else None
    o["final_loss"] = _final_loss_program(o["f_train"], y)
    return o


@jax.jit
def _final_loss_program(f, y):
    """``L = 1/(2n) sum_i ||f_i - y_i||^2`` per member (axis 0)."""
    r = (f - y).reshape(f.shape[0], -1)
    return 0.5 * jnp.sum(r * r, axis=1) / f.shape[1]


def _check_diverged(mode, modes, seeds, lr, crit, steps, first_bad, bad_loss, final_loss):
    step = np.where(first_bad >= 0, first_bad, np.where(np.isfinite(final_loss), -1, steps))
    loss = np.where(first_bad >= 0, bad_loss, final_loss)
    bad = np.flatnonzero(step >= 0)
    if bad.size == 0:
        return
    i = bad[np.argmin(step[bad])]  # the earliest step; ties go to the first seed in the list
    detail = f"{bad.size} of {len(seeds)} seeds diverged"
    if len(modes) > 1 or mode == _LINEARIZED:
        detail += f" ({'the linearized model' if mode == _LINEARIZED else 'the network'})"
    if crit is not None:
        detail += f"; critical lr 2n/lambda_max = {crit:.6g}"
    raise TrainingDiverged(int(step[i]), lr, seeds[i], float(loss[i]), detail=detail)


def train(
    model,
    x,
    y,
    *,
    seeds: Sequence[int],
    steps: int | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    lr_fraction: float | None = None,
    batch_size: int | None = None,
    momentum: float = 0.0,
    record_every: int = 1,
    dtype=jnp.float32,
    params=None,
    linearized: bool = False,
    x_eval=None,
    method: str = "reference",
) -> TrainResult:
    """Train one member per seed on the MSE loss ``1/(2B) sum_batch ||f - y||^2``; one compiled program.

    ``model``: anything with ``init(key, in_dim, dtype)`` and ``apply(params, x)``, hashable (e.g.
    :class:`~pytest_ntk.science.nets.FullyConnected`); a Flax, Equinox or stax model is wrapped by
    :func:`~pytest_ntk.science.adapters.as_model`. ``x`` (n, d); ``y`` the shape of ``model.apply(params,
    x)``, i.e. (n,) for one output.

    ``steps`` or ``epochs`` (exactly one): full batch (``batch_size`` None or >= n) has one step per
    epoch; SGD has ``n // batch_size`` steps per epoch, dropping the ``n % batch_size`` points left
    over by each epoch's permutation.

    ``lr`` (absolute) or ``lr_fraction`` (exactly one): ``lr = lr_fraction * 2 n / lambda_max(Theta_0)``
    with ``Theta_0`` the empirical NTK on all of ``x`` at the *first* seed's initialisation (one rate
    for the whole ensemble, so every member follows the same protocol; :func:`ntk_max_eigenvalue`).
    For SGD this is the full-batch rate, a scale rather than a stability bound.

    ``momentum``: heavy-ball ``v <- mu v + grad; theta <- theta - lr v``. ``params``: initial
    parameters, one set shared by all seeds (then seeds only vary the minibatch order) or a set
    stacked over seeds; default ``model.init(PRNGKey(seed), d, dtype)``. ``dtype``: parameters and
    data (float64 runs inside :func:`pytest_ntk.science.numerics.x64`).

    ``linearized=True`` trains ``f_lin(theta) = f(theta0) + J(theta0) (theta - theta0)`` instead of
    the network (:func:`train_pair` trains both at once).

    A non-finite loss at any step of any seed raises :class:`~pytest_ntk.science.errors.TrainingDiverged`
    naming the earliest such step and its seed (checked after the compiled program; every step is
    tracked inside it, not just the recorded ones).

    ``method`` (default ``"reference"``): ``"auto"`` trains plain :class:`~pytest_ntk.science.nets.FullyConnected` networks
    with the fused program of :mod:`pytest_ntk.science.sgd_fast` and everything else (other models,
    ``linearized=True``) with the reference program; ``"reference"`` forces the reference program,
    ``"fused"`` requires the fused one. Both give the same training up to float32 round-off.
    """
    modes = (_LINEARIZED,) if linearized else (_NETWORK,)
    results = _train(
        model, x, y, seeds=seeds, steps=steps, epochs=epochs, lr=lr, lr_fraction=lr_fraction,
        batch_size=batch_size, momentum=momentum, record_every=record_every, dtype=dtype,
        params=params, modes=modes, x_eval=x_eval, method=method,
    )
    return results[modes[0]]


def train_problems(
    model,
    x,
    y,
    *,
    seeds: Sequence[int],
    steps: int | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    lr_fraction: float | None = None,
    batch_size: int | None = None,
    momentum: float = 0.0,
    record_every: int = 1,
    dtype=jnp.float32,
    params=None,
    linearized: bool = False,
    x_eval=None,
    method: str = "reference",
) -> TrainResult:
    """Train independent problems at once: member ``s`` trains on its own data with its own seed.

    ``x`` (S, n, d), ``y`` (S, n) (or (S, n, k) for ``k`` outputs), ``x_eval`` (S, m, d) or None,
    with ``S = len(seeds)``. Member ``s`` is exactly the run ``train(model, x[s], y[s],
    seeds=[seeds[s]], x_eval=x_eval[s], ...)`` (up to float32 round-off): initial parameters
    ``model.init(PRNGKey(seeds[s]), d, dtype)`` (or ``params``), minibatch order from
    ``fold_in(PRNGKey(seeds[s]), SHUFFLE_STREAM)``, each epoch a fresh permutation of its ``n``
    points cut into ``n // batch_size`` batches (the rest dropped), loss
    ``1/(2B) sum_batch ||f(theta_s, x_i) - y_i||^2``, update ``v <- mu v + grad``,
    ``theta_s <- theta_s - lr v``. All members share ``n``, ``d``, the schedule and the learning rate
    (``lr_fraction`` is taken of the critical rate ``2n / lambda_max`` of the *first* member on its
    own data). Recorded losses, divergence reports (the earliest non-finite loss over all members,
    naming its step and seed) and the result's fields are those of :func:`train`, stacked over
    members; ``f0_train``/``f_train`` are (S, n), ``f0_test``/``f_test`` (S, m).

    ``method`` as in :func:`train`: FullyConnected networks take the fused program (all problems in
    one compiled program, the members' layers as batched matrix products).
    """
    modes = (_LINEARIZED,) if linearized else (_NETWORK,)
    results = _train(
        model, x, y, seeds=seeds, steps=steps, epochs=epochs, lr=lr, lr_fraction=lr_fraction,
        batch_size=batch_size, momentum=momentum, record_every=record_every, dtype=dtype,
        params=params, modes=modes, x_eval=x_eval, per_member=True, method=method,
    )
    return results[modes[0]]


def train_pair(model, x, y, **kwargs) -> TrainPair:
    """Train the network and its linearization from the same initialisation, on the same minibatch
    sequence, with the same learning rate, in one compiled program. Keywords as :func:`train`
    (except ``linearized``). The linearization costs one extra copy of the initial weights.
    """
    if "linearized" in kwargs:
        raise ValueError("train_pair trains both the network and its linearization; do not pass linearized")
    for key in ("seeds",):
        if key not in kwargs:
            raise ValueError(f"train_pair: {key} is required")
    defaults = dict(steps=None, epochs=None, lr=None, lr_fraction=None, batch_size=None, momentum=0.0,
                    record_every=1, dtype=jnp.float32, params=None, x_eval=None, method="reference")
    unknown = set(kwargs) - set(defaults) - {"seeds"}
    if unknown:
        raise TypeError(f"train_pair got unexpected keyword arguments {sorted(unknown)}")
    defaults.update(kwargs)
    results = _train(model, x, y, modes=(_NETWORK, _LINEARIZED), **defaults)
    return TrainPair(network=results[_NETWORK], linearized=results[_LINEARIZED])
