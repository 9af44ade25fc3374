"""Ensemble training benchmarks (pytest-benchmark).

Run: ``uv run pytest benchmarks/bench_train.py -q -p no:cacheprovider --benchmark-columns=min,mean,median``.
Compilation is excluded everywhere: every benchmark first runs its function once
(``warmup_rounds=1``), which compiles and caches its program (train's programs are cached per
model and configuration), then times its rounds. ``train`` returns numpy arrays, so each round
waits for the device.

1. ``test_ensemble_training``: 8 seeds vmapped into one program vs 8 sequential single-seed runs
   (both with the reference program, ``method="reference"``). Each scenario's two rows share a
   group, so the table's relative column is the speed-up of the vmapped ensemble (goal: >= 2x).
   Sizes: the paper-like configuration (FullyConnected(depth=2, width=512) on 256 points, 200
   full-batch steps / SGD with batch 8) runs on an accelerator or with ``NTK_BENCH_FULL=1``; on a
   CPU the default is width 128 so that a run takes seconds, not minutes, on a shared machine.

2. ``test_sgd_ensemble_speed``: Liu et al.'s NN2 (FullyConnected(depth=2, relu, NTK
   parameterisation)), input dimension 15, 468 training points, SGD with batch 8, lr 0.004, 50 seeds,
   trained by the fused program (``method="fused"``) at width 256 and 1024, and by the reference
   program at width 256 for comparison. A round times the compiled training program that
   ``train`` runs, on the arguments ``train`` gives it (see :func:`training_program`), so the per-step
   figures leave out ``train``'s fixed cost per call. Each round is preceded (pytest-benchmark's
   ``setup``, not timed) by a measurement of the machine: the float32 matrix-product rate (the best
   of a jitted ``jnp`` 1024 x 1024 product, compiled like the fused program and with JAX's defaults,
   and numpy's 2048 x 2048 product) and the copy bandwidth (``np.copyto`` of 256 MiB; bytes read plus bytes written
   per second). Machine and training timings are thus interleaved, and the load of a shared
   machine shifts both. ``benchmark.extra_info`` records:

   - ``flops_per_step``: ``S * 6 B sum_l fan_in_l fan_out_l`` for ``S`` members and batch ``B``:
     the forward pass costs ``2 B fan_in fan_out`` per layer (``h W``), the backward pass about twice
     that (``dL/dW = h^T g`` and ``dL/dh = g W^T``; biases, activations and the input layer's unused
     ``dL/dx`` are not counted);
   - ``weight_bytes_per_step``: ``S * 8 P`` for ``P`` parameters per member: every float32 weight
     read once and written once per step, the least any implementation moves when the weights do
     not stay in cache;
   - ``step_s`` (best round / steps), ``matmul_flops_per_s`` (best measured), ``copy_bytes_per_s``
     (best measured), ``achieved_flops_per_s``;
   - ``fraction_of_matmul_rate`` = achieved rate / matmul rate (goal at width 256: >= 0.25);
   - ``roofline_s`` = max(flops / matmul rate, bytes / copy bandwidth) and ``fraction_of_roofline``
     = roofline_s / step_s (goal at width 1024: >= 0.5, i.e. within 2x of the roofline).

   - at width 1024 only, ``pass_s``: the step's three passes over the weights (forward product,
     backward product, in-place rank-8 update) each timed alone (:func:`weight_passes`), alternated
     with the training program; ``schedule_floor_s`` (their sum: the least a step made of these
     passes can take), ``schedule_floor_over_roofline``, ``step_s_alternated`` and
     ``step_over_schedule_floor``. The roofline counts 8 bytes per parameter; these passes move 16,
     so where each runs near the copy bandwidth their sum alone sits near 2x the roofline.

   The goals are recorded and printed, not asserted: on a shared machine a neighbour's load can
   move either side of the ratio between rounds.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pytest_ntk.science import sgd_fast
from pytest_ntk.science import train as train_mod
from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.train import train

FULL = os.environ.get("NTK_BENCH_FULL") == "1" or jax.default_backend() != "cpu"
WIDTH = 512 if FULL else 128
N_POINTS, D, N_SEEDS = 256, 8, 8
SEEDS = list(range(N_SEEDS))
ROUNDS = 5

SCENARIOS = {
    # name: keyword arguments of train()
    "full-batch-200-steps": dict(steps=200, lr=0.5),
    "sgd-batch8-2-epochs": dict(epochs=2, batch_size=8, lr=0.05),  # 64 steps of 8 points
}


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_POINTS, D)) / np.sqrt(D)
    y = np.sin(3 * x[:, 0]) + x[:, 1]
    return FullyConnected(depth=2, width=WIDTH), x, y


def _vmapped(model, x, y, kw):
    return train(model, x, y, seeds=SEEDS, method="reference", **kw).final_loss


def _sequential(model, x, y, kw):
    return np.concatenate([train(model, x, y, seeds=[s], method="reference", **kw).final_loss for s in SEEDS])


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("how", ["vmapped", "sequential"])
def test_ensemble_training(benchmark, problem, scenario, how):
    model, x, y = problem
    kw = SCENARIOS[scenario]
    fn = _vmapped if how == "vmapped" else _sequential
    benchmark.group = f"train 8 seeds, FC(2, {WIDTH}), {N_POINTS} points: {scenario}"
    benchmark.extra_info.update(width=WIDTH, n_points=N_POINTS, n_seeds=N_SEEDS, scenario=scenario,
                                backend=jax.default_backend())
    losses = benchmark.pedantic(fn, args=(model, x, y, kw), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    # Both ways train the same members: the benchmark compares like with like.
    reference = _vmapped(model, x, y, kw) if how == "sequential" else _sequential(model, x, y, kw)
    np.testing.assert_allclose(losses, reference, rtol=1e-3, atol=1e-6)
    assert np.all(np.isfinite(losses))


# ---------------------------------------------------------------------------- SGD speed against the machine
LIU_N, LIU_D, LIU_BATCH, LIU_LR, LIU_SEEDS = 468, 15, 8, 0.004, 50
SPEED_CASES = {
    # id: (width, method, length of a round in epochs or steps)
    "fused-w256": (256, "fused", dict(epochs=5)),  # 290 steps
    "reference-w256": (256, "reference", dict(epochs=1)),  # 58 steps
    "fused-w1024": (1024, "fused", dict(steps=29)),  # half an epoch; 50 seeds' weights: 213 MB
}
SPEED_ROUNDS = 3
MATMUL_N, NUMPY_MATMUL_N, MATMUL_REPS = 1024, 2048, 8
COPY_BYTES = 256 << 20


class Machine:
    """Best float32 matrix-product rate and copy bandwidth seen so far in this session."""

    def __init__(self):
        self.matmul = 0.0
        self.matmul_by = {}
        self.copy = 0.0
        a = np.random.default_rng(0).normal(size=(MATMUL_N, MATMUL_N)).astype(np.float32) / np.sqrt(MATMUL_N)
        self._a = jnp.asarray(a)

        def chain(c):  # MATMUL_REPS dependent products in one program, no dispatch in between
            return jax.lax.fori_loop(0, MATMUL_REPS, lambda i, m: m @ c, c)

        lowered = jax.jit(chain).lower(self._a)
        self._jnp = {"jnp-default": lowered.compile()}
        options = sgd_fast.cpu_compiler_options()
        if options:
            self._jnp["jnp-fused-options"] = lowered.compile(compiler_options=options)
        self._np = np.random.default_rng(1).normal(size=(NUMPY_MATMUL_N, NUMPY_MATMUL_N)).astype(np.float32)
        self._src = np.ones(COPY_BYTES // 4, np.float32)
        self._dst = np.empty_like(self._src)
        for fn in self._jnp.values():
            fn(self._a).block_until_ready()
        np.copyto(self._dst, self._src)

    def measure(self):
        for name, fn in self._jnp.items():
            t = time.perf_counter()
            fn(self._a).block_until_ready()
            rate = MATMUL_REPS * 2 * MATMUL_N**3 / (time.perf_counter() - t)
            self.matmul_by[name] = max(self.matmul_by.get(name, 0.0), rate)
        t = time.perf_counter()
        self._np @ self._np
        self.matmul_by["numpy"] = max(self.matmul_by.get("numpy", 0.0),
                                      2 * NUMPY_MATMUL_N**3 / (time.perf_counter() - t))
        self.matmul = max(self.matmul_by.values())
        for _ in range(2):
            t = time.perf_counter()
            np.copyto(self._dst, self._src)
            self.copy = max(self.copy, 2 * COPY_BYTES / (time.perf_counter() - t))


@pytest.fixture(scope="module")
def machine():
    return Machine()


@pytest.fixture(scope="module")
def liu_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(LIU_N, LIU_D))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.sign(x[:, 0]) * np.abs(x[:, 0]) ** 0.5 + x[:, 1] * x[:, 2]
    return x, y


def step_counts(model: FullyConnected, d: int, batch: int, members: int):
    """(flops, weight bytes) of one SGD step of ``members`` float32 networks; see the module docstring."""
    sizes = model.layer_sizes(d)
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return members * 6 * batch * macs, members * 8 * model.n_params(d)


def training_program(model, method, x, y, seeds, steps):
    """``(compiled training program, function returning fresh arguments)`` for SGD on (x, y), exactly
    as :func:`~pytest_ntk.science.train.train` builds them (same initial parameters, same minibatch
    keys). Timing the program alone leaves out what ``train`` does once per call whatever the number
    of steps: drawing the initial parameters and evaluating the network on all points before and
    after training (at width 1024 each evaluation costs as much as an epoch of SGD)."""
    n, d = x.shape
    nb = n // LIU_BATCH
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    data_keys = jax.vmap(lambda k: jax.random.fold_in(k, train_mod.SHUFFLE_STREAM))(keys)
    theta0 = train_mod._init_program(model, d, jnp.dtype(jnp.float32))(keys)
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    lr, mu = jnp.float32(LIU_LR), jnp.float32(0.0)
    if method == "fused":
        cfg = sgd_fast.FastConfig(n=n, batch=LIU_BATCH, shuffle=True, batches_per_epoch=nb, steps=steps,
                                  record_every=nb, momentum=False, shared_data=True,
                                  group=sgd_fast.group_size(len(seeds), 4 * model.n_params(d)))
        program = sgd_fast.get_program(model, cfg, d)
        rest = (data_keys, xj[None], yj[None, :, None], lr, mu)
    else:
        cfg = train_mod._Config(n=n, batch=LIU_BATCH, batches_per_epoch=nb, steps=steps, record_every=nb,
                                momentum=False, modes=("network",), has_eval=False)
        program = train_mod._get_program(model, cfg)
        f0 = train_mod._get_outputs_program(model)(theta0, xj)
        rest = (f0, None, data_keys, xj, yj, None, lr, mu)

    def fresh():  # the programs donate their parameters
        return (jax.tree_util.tree_map(jnp.copy, theta0),) + rest

    return program, fresh


def weight_passes(model, d, members, steps, group):
    """Timers of the fused step's three passes over the weights, each run alone for ``steps`` steps.

    Per step and layer, :mod:`~pytest_ntk.science.sgd_fast` touches the weights three times: the
    forward product ``h W`` (reads ``W``), the backward product ``W g^T`` (reads ``W``; not for the
    input layer) and the in-place rank-``B`` update (reads and writes ``W``). With XLA's operations
    they cannot share one pass over ``W`` (a matrix-product call neither consumes nor produces an
    elementwise fusion), so the step moves 16 bytes per parameter where the roofline counts 8. Each
    pass is timed here in a loop of its own over all members (groups of ``group`` as the fused
    program trains them; fixed activations and signals, one cheap loop-carried dependency so that
    nothing is hoisted): the sum of the three is the least time a step built from these passes can
    take, the rest of the step (activations, losses, biases, minibatch gathers, loop control) being
    free. Returns ``{"forward", "backward", "update"}`` -> a function returning seconds per step."""
    sizes = model.layer_sizes(d)
    key = jax.random.PRNGKey(0)
    params = [jax.random.normal(jax.random.fold_in(key, l), (members, a, b), jnp.float32) / np.sqrt(a)
              for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    hs = [jnp.full((members, LIU_BATCH, a), 0.5, jnp.float32) for a in sizes[:-1]]
    gs = [jnp.full((members, LIU_BATCH, b), 1e-6, jnp.float32) for b in sizes[1:]]

    def grouped(one):
        def program(ps, hs, gs):
            split = lambda a: a.reshape((members // group, group) + a.shape[1:])  # noqa: E731
            out = jax.lax.map(lambda a: one(*a), tuple(list(map(split, t)) for t in (ps, hs, gs)))
            return jax.tree_util.tree_map(lambda a: a.reshape((members,) + a.shape[2:]), out)
        return program

    def forward(ps, hs, gs):  # carries h, reads every W each step
        def step(h, _):
            return [hl + 0.0 * sgd_fast._forward_contract(hl, W)[:, :, :1] for hl, W in zip(h, ps)], None
        return jax.lax.scan(step, hs, None, length=steps)[0]

    def backward(ps, hs, gs):  # carries g, reads every W but the input layer's
        def step(g, _):
            return [g[0]] + [gl + 0.0 * jnp.einsum("gio,gbo->gib", W, gl)[:, :1, :].sum(-1, keepdims=True)
                             for gl, W in zip(g[1:], ps[1:])], None
        return jax.lax.scan(step, gs, None, length=steps)[0]

    def update(ps, hs, gs):  # carries W, reads and writes it in place
        def step(W, _):
            return [Wl - sgd_fast._rank_b(hl, gl) for Wl, hl, gl in zip(W, hs, gs)], None
        return jax.lax.scan(step, ps, None, length=steps)[0]

    timers = {}
    for name, fn in (("forward", forward), ("backward", backward), ("update", update)):
        compiled = jax.jit(grouped(fn), donate_argnums=(0,) if name == "update" else (),
                           compiler_options=sgd_fast.cpu_compiler_options())

        def run(compiled=compiled, name=name):
            ps = [jnp.copy(p) for p in params] if name == "update" else params
            jax.block_until_ready(ps)
            start = time.perf_counter()
            jax.block_until_ready(compiled(ps, hs, gs))
            return (time.perf_counter() - start) / steps

        run()  # compiles
        timers[name] = run
    return timers


@pytest.mark.parametrize("case", list(SPEED_CASES))
def test_sgd_ensemble_speed(benchmark, machine, liu_data, case):
    width, method, length = SPEED_CASES[case]
    x, y = liu_data
    model = FullyConnected(depth=2, width=width)
    seeds = list(range(LIU_SEEDS))
    steps = length.get("steps") or length["epochs"] * (LIU_N // LIU_BATCH)
    flops, weight_bytes = step_counts(model, LIU_D, LIU_BATCH, LIU_SEEDS)
    program, fresh = training_program(model, method, x, y, seeds, steps)

    def setup():
        machine.measure()
        args = fresh()
        jax.block_until_ready(args)
        return args, {}

    def run(*args):
        return jax.block_until_ready(program(*args))

    benchmark.group = f"SGD, {LIU_SEEDS} seeds of NN2, batch {LIU_BATCH}, d={LIU_D}, n={LIU_N}"
    out = benchmark.pedantic(run, setup=setup, rounds=SPEED_ROUNDS, iterations=1, warmup_rounds=1)
    params = out["params"] if method == "fused" else out["network"]["params"]
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree_util.tree_leaves(params))

    step_s = benchmark.stats.stats.min / steps
    achieved = flops / step_s
    roofline_s = max(flops / machine.matmul, weight_bytes / machine.copy)
    info = dict(
        width=width, method=method, members=LIU_SEEDS, batch=LIU_BATCH, steps=steps,
        flops_per_step=flops, weight_bytes_per_step=weight_bytes,
        step_s=step_s, seed_step_us=step_s / LIU_SEEDS * 1e6,
        achieved_flops_per_s=achieved, matmul_flops_per_s=machine.matmul,
        matmul_flops_per_s_by=dict(machine.matmul_by), copy_bytes_per_s=machine.copy,
        fraction_of_matmul_rate=achieved / machine.matmul,
        roofline_s=roofline_s, fraction_of_roofline=roofline_s / step_s,
        backend=jax.default_backend(),
    )
    if width >= 1024:
        # The floor of the fused step's schedule (three passes over the weights per step), timed
        # alternated with the training program so that both see the same load.
        timers = weight_passes(model, LIU_D, LIU_SEEDS, steps,
                               sgd_fast.group_size(LIU_SEEDS, 4 * model.n_params(LIU_D)))
        best = {name: float("inf") for name in timers}
        again = float("inf")
        for _ in range(SPEED_ROUNDS):
            for name, timer in timers.items():
                best[name] = min(best[name], timer())
            args = fresh()
            jax.block_until_ready(args)
            start = time.perf_counter()
            run(*args)
            again = min(again, (time.perf_counter() - start) / steps)
        floor_s = sum(best.values())
        info.update(pass_s=best, schedule_floor_s=floor_s, schedule_floor_over_roofline=floor_s / roofline_s,
                    step_s_alternated=again, step_over_schedule_floor=again / floor_s,
                    step_over_roofline_alternated=again / roofline_s)
    benchmark.extra_info.update(info)
    by = ", ".join(f"{k} {v / 1e9:.0f}" for k, v in machine.matmul_by.items())
    print(f"\n[{case}] {step_s * 1e3:.2f} ms/step ({info['seed_step_us']:.1f} us per seed-step), "
          f"{achieved / 1e9:.1f} GFLOP/s = {info['fraction_of_matmul_rate']:.1%} of the matmul rate "
          f"{machine.matmul / 1e9:.1f} GFLOP/s ({by}); "
          f"copy {machine.copy / 1e9:.1f} GB/s; roofline {roofline_s * 1e3:.2f} ms/step = "
          f"{info['fraction_of_roofline']:.1%} of the step time")
    if "schedule_floor_s" in info:
        passes = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in info["pass_s"].items())
        print(f"[{case}] the three weight passes, each alone: {passes} ms/step; together "
              f"{info['schedule_floor_s'] * 1e3:.2f} ms = {info['schedule_floor_over_roofline']:.2f}x the roofline; "
              f"the training step alternated with them: {info['step_s_alternated'] * 1e3:.2f} ms = "
              f"{info['step_over_roofline_alternated']:.2f}x the roofline, {info['step_over_schedule_floor']:.2f}x "
              f"the passes")
