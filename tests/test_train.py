"""train.py against independent computations: kernel dynamics from a jax.jacobian NTK, single-seed runs,
a step-by-step SGD loop on jax.grad, and the fused program against the reference program."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from pytest_ntk.science import predict
from pytest_ntk.science.errors import TrainingDiverged
from pytest_ntk.science.nets import FullyConnected
from pytest_ntk.science.numerics import x64
from pytest_ntk.science.train import SHUFFLE_STREAM, TrainPair, ntk_max_eigenvalue, train, train_pair, train_problems

MODEL = FullyConnected(depth=1, width=24, activation="erf")
N, M, D = 10, 4, 3


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1]
    x_eval = rng.normal(size=(M, D))
    return x, y, x_eval


def jacobian_ntk(model, params, x1, x2):
    """Theta(x1, x2) = J(x1) J(x2)^T in float64, by jax.jacobian of the flattened parameters."""
    with x64():
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        flat, unravel = ravel_pytree(params)
        jac = lambda x: jax.jacobian(lambda w: model.apply(unravel(w), jnp.asarray(x, jnp.float64)))(flat)  # noqa: E731
        return np.asarray(jac(x1) @ jac(x2).T)


def init64(model, seed, d):
    with x64():
        return model.init(jax.random.PRNGKey(seed), d, jnp.float64)


def member(params, i):
    return jax.tree_util.tree_map(lambda a: a[i], params)


def mse(f, y):
    return 0.5 * np.mean((np.asarray(f) - y) ** 2)


# ---------------------------------------------------------------------------- linearized training = kernel dynamics
def test_linearized_gradient_descent_is_exactly_the_kernel_prediction(data):
    x, y, x_eval = data
    seed, steps = 3, 40
    theta0 = init64(MODEL, seed, D)
    ntk = jacobian_ntk(MODEL, theta0, x, x)
    ntk_eval = jacobian_ntk(MODEL, theta0, x_eval, x)
    lr = 0.7 * predict.critical_lr(ntk)
    res = train(MODEL, x, y, seeds=[seed], steps=steps, lr=lr, dtype=jnp.float64, linearized=True, x_eval=x_eval)
    with x64():
        f0 = np.asarray(MODEL.apply(theta0, jnp.asarray(x)))
        f0_eval = np.asarray(MODEL.apply(theta0, jnp.asarray(x_eval)))
    np.testing.assert_allclose(res.f0_train[0], f0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.f0_test[0], f0_eval, rtol=1e-12, atol=1e-12)
    want_train, want_test = predict.gradient_descent_mse(
        ntk, y, ntk_eval, steps * lr, lr=lr, f0_train=f0, f0_test=f0_eval
    )
    np.testing.assert_allclose(res.f_train[0], want_train, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(res.f_test[0], want_test, rtol=1e-9, atol=1e-10)
    assert res.final_loss[0] == pytest.approx(mse(want_train, y), rel=1e-9)
    # Recorded losses are L(theta_s) before each update: the first is the loss at init.
    assert res.losses[0, 0] == pytest.approx(mse(f0, y), rel=1e-12)


def test_linearized_gradient_descent_approaches_gradient_flow_at_first_order_in_lr(data):
    x, y, x_eval = data
    seed, t = 1, 1.5
    theta0 = init64(MODEL, seed, D)
    ntk = jacobian_ntk(MODEL, theta0, x, x)
    ntk_eval = jacobian_ntk(MODEL, theta0, x_eval, x)
    with x64():
        f0 = np.asarray(MODEL.apply(theta0, jnp.asarray(x)))
        f0_eval = np.asarray(MODEL.apply(theta0, jnp.asarray(x_eval)))
    flow_train, flow_test = predict.gradient_descent_mse(ntk, y, ntk_eval, t, f0_train=f0, f0_test=f0_eval)
    errors = []
    for steps in (100, 200):
        lr = t / steps
        res = train(MODEL, x, y, seeds=[seed], steps=steps, lr=lr, dtype=jnp.float64, linearized=True, x_eval=x_eval)
        errors.append(np.max(np.abs(res.f_test[0] - flow_test)) + np.max(np.abs(res.f_train[0] - flow_train)))
    assert errors[1] < 1e-2 * np.max(np.abs(y))
    assert 1.7 < errors[0] / errors[1] < 2.3  # Euler's method: error proportional to lr


def test_long_linearized_training_reaches_kernel_regression_with_initial_output_term(data):
    x, y, x_eval = data
    seed = 2
    theta0 = init64(MODEL, seed, D)
    ntk = jacobian_ntk(MODEL, theta0, x, x)
    ntk_eval = jacobian_ntk(MODEL, theta0, x_eval, x)
    with x64():
        f0 = np.asarray(MODEL.apply(theta0, jnp.asarray(x)))
        f0_eval = np.asarray(MODEL.apply(theta0, jnp.asarray(x_eval)))
    lam = np.linalg.eigvalsh(ntk)
    lr = 0.9 * predict.critical_lr(ntk)
    steps = int(np.ceil(40 * N / (lr * lam[0])))  # e^{-40} along the slowest direction
    assert steps < 200_000
    res = train(MODEL, x, y, seeds=[seed], steps=steps, lr=lr, dtype=jnp.float64, linearized=True,
                x_eval=x_eval, record_every=steps)
    regression = f0_eval + ntk_eval @ np.linalg.solve(ntk, y - f0)
    np.testing.assert_allclose(res.f_test[0], regression, rtol=1e-6, atol=1e-6)
    _, inf_test = predict.gradient_descent_mse(ntk, y, ntk_eval, np.inf, f0_train=f0, f0_test=f0_eval)
    np.testing.assert_allclose(inf_test, regression, rtol=1e-8, atol=1e-9)


def test_linearized_sgd_follows_the_documented_minibatch_schedule(data):
    """f <- f - (lr/B) Theta[:, b] (f_b - y_b) over batches of consecutive entries of each epoch's permutation."""
    x, y, _ = data
    seed, batch, epochs = 4, 3, 4
    theta0 = init64(MODEL, seed, D)
    ntk = jacobian_ntk(MODEL, theta0, x, x)
    lr = 0.3 * predict.critical_lr(ntk)
    res = train(MODEL, x, y, seeds=[seed], epochs=epochs, lr=lr, batch_size=batch, dtype=jnp.float64, linearized=True)
    f = res.f0_train[0].copy()
    key = jax.random.fold_in(jax.random.PRNGKey(seed), SHUFFLE_STREAM)
    losses = []
    for e in range(epochs):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, e), N))
        for b in range(N // batch):  # the last N % batch points are dropped
            idx = perm[b * batch:(b + 1) * batch]
            losses.append(0.5 * np.sum((f[idx] - y[idx]) ** 2) / batch)
            f = f - (lr / batch) * ntk[:, idx] @ (f[idx] - y[idx])
    assert res.steps == epochs * (N // batch)
    np.testing.assert_allclose(res.f_train[0], f, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(res.losses[0], losses, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------- ensembles
@pytest.mark.parametrize("batch_size, momentum", [(None, 0.0), (4, 0.5)])
def test_ensemble_equals_sequential_single_seed_runs(data, batch_size, momentum):
    x, y, x_eval = data
    seeds = [0, 7, 11]
    kw = dict(epochs=6, lr=0.3, batch_size=batch_size, momentum=momentum, x_eval=x_eval, record_every=2)
    ens = train(MODEL, x, y, seeds=seeds, **kw)
    for i, s in enumerate(seeds):
        single = train(MODEL, x, y, seeds=[s], **kw)
        for a, b in zip(jax.tree_util.tree_leaves(member(ens.params, i)), jax.tree_util.tree_leaves(member(single.params, 0))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(ens.losses[i], single.losses[0], rtol=2e-5, atol=1e-7)
        np.testing.assert_allclose(ens.f_test[i], single.f_test[0], rtol=2e-5, atol=2e-6)
        # The initialisation is model.init(PRNGKey(seed)).
        with_key = MODEL.init(jax.random.PRNGKey(s), D)
        np.testing.assert_allclose(ens.f0_train[i], np.asarray(MODEL.apply(with_key, jnp.asarray(x, jnp.float32))), rtol=1e-5, atol=1e-6)
    assert ens.losses.shape == (3, 3 if batch_size is None else 6)


def test_train_pair_equals_separate_runs(data):
    x, y, x_eval = data
    kw = dict(seeds=[5, 6], epochs=3, lr=0.2, batch_size=4, x_eval=x_eval)
    pair = train_pair(MODEL, x, y, **kw)
    assert isinstance(pair, TrainPair)
    net, lin = train(MODEL, x, y, **kw), train(MODEL, x, y, linearized=True, **kw)
    np.testing.assert_allclose(pair.network.f_test, net.f_test, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pair.linearized.f_test, lin.f_test, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pair.network.f0_train, pair.linearized.f0_train)
    assert pair.linearized.linearized and not pair.network.linearized
    # f_lin(params) = f(params0) + J(params0) (params - params0), evaluated independently by jvp.
    p0, p = member(pair.linearized.params0, 1), member(pair.linearized.params, 1)
    delta = jax.tree_util.tree_map(jnp.subtract, p, p0)
    f0, jd = jax.jvp(lambda q: MODEL.apply(q, jnp.asarray(x_eval, jnp.float32)), (p0,), (delta,))
    np.testing.assert_allclose(pair.linearized.f_test[1], np.asarray(f0 + jd), rtol=1e-4, atol=1e-5)


def test_shared_initial_params_are_used_by_every_seed(data):
    x, y, _ = data
    theta0 = MODEL.init(jax.random.PRNGKey(42), D)
    res = train(MODEL, x, y, seeds=[0, 1], steps=2, lr=0.1, params=theta0)
    want = np.asarray(MODEL.apply(theta0, jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(res.f0_train, np.stack([want, want]), rtol=1e-6, atol=1e-6)
    # Full batch, same init: the seeds are identical members.
    np.testing.assert_allclose(res.f_train[0], res.f_train[1], rtol=1e-6)
    # The caller's arrays are not donated away.
    assert np.all(np.isfinite(np.asarray(theta0[0]["W"])))


# ---------------------------------------------------------------------------- learning rate
def test_lr_fraction_resolves_to_fraction_of_critical_rate_of_first_seed(data):
    x, y, _ = data
    seeds = [9, 1]
    res = train(MODEL, x, y, seeds=seeds, steps=3, lr_fraction=0.4)
    theta0 = MODEL.init(jax.random.PRNGKey(seeds[0]), D)  # float32, as trained
    ntk = jacobian_ntk(MODEL, theta0, x, x)
    assert res.critical_lr == pytest.approx(predict.critical_lr(ntk), rel=1e-6)
    assert res.lr == pytest.approx(0.4 * predict.critical_lr(ntk), rel=1e-6)
    assert ntk_max_eigenvalue(MODEL, theta0, x) == pytest.approx(np.linalg.eigvalsh(ntk)[-1], rel=1e-8)


def test_multi_output_top_eigenvalue_matches_jacobian(data):
    x, _, _ = data
    model = FullyConnected(depth=1, width=16, out_dim=2)
    theta0 = model.init(jax.random.PRNGKey(0), D)
    with x64():
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), theta0)
        flat, unravel = ravel_pytree(p64)
        jac = jax.jacobian(lambda w: model.apply(unravel(w), jnp.asarray(x)).reshape(-1))(flat)
        lam = np.linalg.eigvalsh(np.asarray(jac @ jac.T))[-1]
    assert ntk_max_eigenvalue(model, theta0, x) == pytest.approx(lam, rel=1e-8)


# ---------------------------------------------------------------------------- divergence
def test_divergence_names_step_lr_and_earliest_seed(data):
    x, y, _ = data
    seeds, lr = [3, 8, 13], 2e3
    per_seed = {}
    for s in seeds:
        with pytest.raises(TrainingDiverged) as info:
            train(MODEL, x, y, seeds=[s], steps=60, lr=lr)
        per_seed[s] = info.value.step
    with pytest.raises(TrainingDiverged) as info:
        train(MODEL, x, y, seeds=seeds, steps=60, lr=lr)
    err = info.value
    assert err.step == min(per_seed.values())
    assert err.seed == min(seeds, key=lambda s: (per_seed[s], seeds.index(s)))
    assert err.lr == lr and not np.isfinite(err.loss)
    message = str(err)
    assert f"step {err.step}" in message and f"seed {err.seed}" in message and "2000" in message


def test_divergence_between_records_is_caught_at_its_step(data):
    x, y, _ = data
    with pytest.raises(TrainingDiverged) as every_step:
        train(MODEL, x, y, seeds=[3], steps=60, lr=2e3, record_every=1)
    with pytest.raises(TrainingDiverged) as one_record:
        train(MODEL, x, y, seeds=[3], steps=60, lr=2e3, record_every=60)
    assert one_record.value.step == every_step.value.step


def test_divergence_in_the_linearized_model_is_reported_as_such(data):
    x, y, _ = data
    with pytest.raises(TrainingDiverged, match="linearized"):
        train(MODEL, x, y, seeds=[0], steps=3000, lr_fraction=1.5, linearized=True)


# ---------------------------------------------------------------------------- optimisers lower the loss
@pytest.mark.parametrize(
    "kw",
    [
        dict(steps=100, lr=0.5),
        dict(steps=100, lr=0.1, momentum=0.9),
        dict(epochs=20, lr=0.2, batch_size=3),
        dict(epochs=20, lr=0.1, batch_size=4, momentum=0.5),
    ],
    ids=["gd", "momentum", "sgd", "sgd-momentum"],
)
def test_training_lowers_the_loss(data, kw):
    x, y, _ = data
    res = train(MODEL, x, y, seeds=[0, 1], **kw)
    initial = np.array([mse(f0, y) for f0 in res.f0_train])
    assert np.all(res.final_loss < 0.5 * initial)
    np.testing.assert_allclose(res.final_loss, [mse(f, y) for f in res.f_train], rtol=1e-5)


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(lr=0.1, lr_fraction=0.5), "exactly one of lr"),
        (dict(), "exactly one of lr"),
        (dict(lr=-0.1), "lr must be finite and > 0, got -0.1"),
        (dict(lr_fraction=0.0), "lr_fraction"),
        (dict(lr=0.1, seeds=[]), "seeds"),
        (dict(lr=0.1, seeds=[1, 1]), "distinct"),
        (dict(lr=0.1, y=np.zeros(N + 1)), "same number of rows"),
        (dict(lr=0.1, y=np.zeros((N, 2))), "shape of the network's outputs"),
        (dict(lr=0.1, steps=None), "exactly one of steps and epochs"),
        (dict(lr=0.1, epochs=3), "exactly one of steps and epochs"),
        (dict(lr=0.1, momentum=1.0), "momentum"),
        (dict(lr=0.1, batch_size=0), "batch_size"),
        (dict(lr=0.1, record_every=0), "record_every"),
        (dict(lr=0.1, x_eval=np.zeros((2, D + 1))), "x_eval"),
        (dict(lr=0.1, x=np.full((N, D), np.nan)), "x must be a finite"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(data, kw, match):
    x, y, _ = data
    args = dict(x=x, y=y, seeds=[0], steps=2)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        train(MODEL, args.pop("x"), args.pop("y"), **args)


# ---------------------------------------------------------------------------- the fused program
def max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
               for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def sgd_by_hand(model, params, x, y, *, seed, steps, batch, lr, momentum):
    """SGD as the module docstring of train.py states it, one jax.grad per step (float64):
    each epoch a permutation of fold_in(fold_in(PRNGKey(seed), SHUFFLE_STREAM), epoch), cut into
    n // batch consecutive batches; v <- mu v + grad L_b; theta <- theta - lr v."""
    n = x.shape[0]
    key = jax.random.fold_in(jax.random.PRNGKey(seed), SHUFFLE_STREAM)
    nb = n // batch

    def loss(p, xb, yb):
        r = model.apply(p, xb) - yb
        return 0.5 * jnp.sum(r * r) / xb.shape[0]

    grad = jax.jit(jax.value_and_grad(loss))
    vel = jax.tree_util.tree_map(jnp.zeros_like, params)
    losses = []
    for s in range(steps):
        e, b = divmod(s, nb)
        if batch >= n:
            idx = np.arange(n)
        else:
            perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, e), n))
            idx = perm[b * batch:(b + 1) * batch]
        value, g = grad(params, x[idx], y[idx])
        losses.append(float(value))
        vel = jax.tree_util.tree_map(lambda v, gg: momentum * v + gg, vel, g)
        params = jax.tree_util.tree_map(lambda p, v: p - lr * v, params, vel)
    return params, np.array(losses)


@pytest.mark.parametrize(
    "model, n, batch, momentum, steps",
    [
        (FullyConnected(depth=2, width=40, activation="erf"), 10, 3, 0.0, 14),  # unrolled input layer, products
        (FullyConnected(depth=1, width=36, activation="relu"), 40, 20, 0.5, 9),  # rank-20 update as a product
        (FullyConnected(depth=1, width=12, activation="tanh", out_dim=2, parameterization="standard"), 10, None,
         0.3, 7),
    ],
    ids=["sgd", "sgd-momentum-big-batch", "gd-momentum-two-outputs"],
)
def test_fused_program_is_sgd_as_documented(model, n, batch, momentum, steps):
    """float64, where round-off cannot hide a wrong gradient, batch or update: the fused program
    equals a step-by-step loop on jax.grad of model.apply to 1e-12."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, D))
    y = np.sin(x[:, :model.out_dim] @ np.ones((model.out_dim, model.out_dim))) + x[:, 1:2]
    y = y[:, 0] if model.out_dim == 1 else y
    seed, lr = 6, 0.05
    res = train(model, x, y, seeds=[seed], steps=steps, lr=lr, batch_size=batch, momentum=momentum,
                dtype=jnp.float64, method="fused", record_every=1)
    assert res.method == "fused"
    with x64():
        params, losses = sgd_by_hand(model, init64(model, seed, D), jnp.asarray(x), jnp.asarray(y), seed=seed,
                                     steps=steps, batch=batch or n, lr=lr, momentum=momentum)
    assert max_diff(member(res.params, 0), params) < 1e-12
    np.testing.assert_allclose(res.losses[0], losses, rtol=1e-12)


def test_fused_float32_training_equals_the_reference_program_to_round_off():
    """NN2-like (relu, NTK parameterisation, d = 15, batch 8), 400 SGD steps, 3 seeds. Both float32
    programs compute the same arithmetic in different orders. The tolerance is the reference
    program's own float32 error: its distance to the same training in float64 (same initial
    parameters, same float32-rounded data). The fused run must be at least that close to the
    reference run, and as close to the float64 run as the reference run is."""
    rng = np.random.default_rng(0)
    n, d = 60, 15
    x = rng.normal(size=(n, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
    y = (np.sin(3 * x[:, 0]) + x[:, 1]).astype(np.float32).astype(np.float64)
    x_eval = rng.normal(size=(9, d)).astype(np.float32).astype(np.float64)
    model = FullyConnected(depth=2, width=64)
    seeds = [0, 1, 2]
    kw = dict(seeds=seeds, steps=400, batch_size=8, lr=0.05, x_eval=x_eval, record_every=1)
    fused = train(model, x, y, method="fused", **kw)
    ref = train(model, x, y, method="reference", **kw)
    theta0 = jax.tree_util.tree_map(lambda *a: np.stack([np.asarray(v, np.float64) for v in a]),
                                    *[model.init(jax.random.PRNGKey(s), d) for s in seeds])
    exact = train(model, x, y, method="reference", dtype=jnp.float64, params=theta0, **kw)
    assert (fused.method, ref.method) == ("fused", "reference")
    # Same initial parameters and same minibatches: identical initial outputs, per-step losses agree.
    np.testing.assert_array_equal(fused.f0_train, ref.f0_train)
    round_off = max_diff(ref.params, exact.params)
    assert 0 < round_off < 1e-4
    assert max_diff(fused.params, ref.params) <= round_off
    assert max_diff(fused.params, exact.params) <= 2 * round_off
    out_round_off = np.max(np.abs(ref.f_test - exact.f_test))
    assert np.max(np.abs(fused.f_test - ref.f_test)) <= out_round_off
    assert np.max(np.abs(fused.f_test - exact.f_test)) <= 2 * out_round_off
    loss_round_off = np.max(np.abs(ref.losses - exact.losses) / exact.losses)
    assert np.max(np.abs(fused.losses - ref.losses) / ref.losses) <= 2 * loss_round_off
    np.testing.assert_allclose(fused.final_loss, ref.final_loss, rtol=1e-5)


@pytest.mark.parametrize("method", ["fused", "reference"])
def test_a_problem_trained_in_a_batch_of_problems_equals_it_trained_alone(method):
    """train_problems: member s is train(x[s], y[s], seeds=[seeds[s]]), up to float32 round-off
    (compared with the reference program alone, whose own tolerance is the ensemble test's)."""
    rng = np.random.default_rng(1)
    P, n, d, m = 4, 30, 5, 6
    x = rng.normal(size=(P, n, d))
    y = np.sin(x[..., 0]) + 0.3 * x[..., 1]
    x_eval = rng.normal(size=(P, m, d))
    model = FullyConnected(depth=2, width=40)
    seeds = [11, 2, 7, 40]
    kw = dict(epochs=25, batch_size=8, lr=0.1, record_every=10)
    batch = train_problems(model, x, y, seeds=seeds, x_eval=x_eval, method=method, **kw)
    assert batch.method == method
    assert batch.f0_train.shape == (P, n) and batch.f_test.shape == (P, m) and batch.losses.shape == (P, 8)
    for p in range(P):
        alone = train(model, x[p], y[p], seeds=[seeds[p]], x_eval=x_eval[p], method="reference", **kw)
        assert max_diff(member(batch.params, p), member(alone.params, 0)) < 2e-5
        np.testing.assert_allclose(batch.f0_train[p], alone.f0_train[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(batch.f_test[p], alone.f_test[0], rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(batch.losses[p], alone.losses[0], rtol=2e-5, atol=1e-7)
        np.testing.assert_allclose(batch.final_loss[p], alone.final_loss[0], rtol=2e-5)


def test_train_problems_with_shared_initial_params_and_several_outputs():
    rng = np.random.default_rng(2)
    model = FullyConnected(depth=1, width=20, out_dim=2)
    x = rng.normal(size=(2, 12, D))
    y = np.stack([np.sin(x[..., 0]), np.cos(x[..., 1])], axis=-1)
    theta0 = model.init(jax.random.PRNGKey(5), D)
    kw = dict(seeds=[0, 1], steps=20, lr=0.1, batch_size=4, params=theta0)
    fused, ref = (train_problems(model, x, y, method=m, **kw) for m in ("fused", "reference"))
    assert fused.f_train.shape == (2, 12, 2)
    np.testing.assert_allclose(fused.f_train, ref.f_train, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.f0_train[1], np.asarray(model.apply(theta0, jnp.asarray(x[1], jnp.float32))),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(x=np.zeros((3, N, D))), "one data set per seed"),
        (dict(x=np.zeros((N, D))), "x must be 3-D"),
        (dict(y=np.zeros((2, N + 1))), "same number of rows"),
        (dict(y=np.zeros((3, N))), "same number of rows"),
        (dict(x_eval=np.zeros((2, 4, D + 1))), "x_eval"),
        (dict(x_eval=np.zeros((3, 4, D))), "x_eval"),
    ],
)
def test_train_problems_checks_the_member_axis(kw, match):
    args = dict(x=np.zeros((2, N, D)), y=np.zeros((2, N)))
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        train_problems(MODEL, args.pop("x"), args.pop("y"), seeds=[0, 1], steps=2, lr=0.1, **args)


def test_fused_divergence_is_reported_like_the_reference():
    x, y = np.random.default_rng(0).normal(size=(N, D)), np.arange(N, dtype=float)
    reports = {}
    for method in ("fused", "reference"):
        with pytest.raises(TrainingDiverged) as info:
            train(MODEL, x, y, seeds=[3, 8, 13], steps=200, lr=2e3, batch_size=4, method=method, record_every=50)
        reports[method] = (info.value.step, info.value.seed, info.value.lr)
    assert reports["fused"] == reports["reference"]


def test_one_wide_member_trains_fused():
    """A single member of hidden width 256 (oneDNN products of one matrix; a configuration that once
    crashed XLA's compiler when the program also evaluated the trained network)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 15))
    res = train(FullyConnected(depth=2, width=256), x, np.sin(x[:, 0]), seeds=[0], epochs=2, batch_size=8, lr=1e-3,
                x_eval=x[:5], method="fused")
    assert res.method == "fused" and np.all(np.isfinite(res.f_test))


def test_method_selects_the_program():
    x, y = np.random.default_rng(0).normal(size=(N, D)), np.zeros(N)
    kw = dict(seeds=[0], steps=2, lr=0.1)
    assert train(MODEL, x, y, **kw).method == "reference"  # the default, until the audit is rerun on the fused one
    assert train(MODEL, x, y, method="auto", **kw).method == "fused"
    assert train(MODEL, x, y, method="reference", **kw).method == "reference"
    assert train(MODEL, x, y, method="auto", linearized=True, **kw).method == "reference"
    with pytest.raises(ValueError, match="method must be one of"):
        train(MODEL, x, y, method="fast", **kw)
    with pytest.raises(ValueError, match="fused"):
        train(MODEL, x, y, method="fused", linearized=True, **kw)
