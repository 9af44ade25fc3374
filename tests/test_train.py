"""train.py against independent computations: kernel dynamics from a jax.jacobian NTK, single-seed runs."""

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
from pytest_ntk.science.train import SHUFFLE_STREAM, TrainPair, ntk_max_eigenvalue, train, train_pair

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
