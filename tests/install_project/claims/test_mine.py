"""Small claims written against pytest-ntk's public API only, as a user of the installed package
writes them (no conftest: the plugin must come from its ``pytest11`` entry point).

Expected verdicts (checked by tests/test_install_wheel.py in the pytest-ntk repository):
``mine.ntk_mean`` HOLDS, ``mine.nngp_psd`` HOLDS, ``mine.gp_vs_ntk[depth=1]`` and
``mine.gp_vs_ntk[depth=2]`` FAILS (the README's example: a finding, by a wide margin).
"""

import numpy as np
import pytest

from pytest_ntk import FullyConnected, kernel_regression
from pytest_ntk.science.data import liu2025_sphere, sphere

SETTINGS = {
    "quick": {"width": 256, "seeds": 12, "n_inputs": 3, "dim": 5},
    "paper": {"width": 2048, "seeds": 100, "n_inputs": 3, "dim": 5},
}


@pytest.mark.claim(
    "mine.ntk_mean",
    source="Jacot et al. (2018), arXiv:1806.07572, Theorem 1",
    statement="the empirical NTK of a one-hidden-layer ReLU network averages to the analytic NTK, not the NNGP",
    expect="holds",
)
def test_ntk_mean(claim, tolerance, ntk_profile):
    import jax

    s = ntk_profile.pick(SETTINGS, suite="mine")
    assert s["seeds"] == 24, s  # the override of the user's profile "tiny" in pyproject.toml
    x = sphere(s["n_inputs"], s["dim"], claim.seed)
    net = FullyConnected(depth=1, width=s["width"])
    with claim.stage("empirical"):
        values = [net.empirical_ntk(net.init(jax.random.PRNGKey(k), s["dim"]), x)[0, 1]
                  for k in claim.seeds(s["seeds"])]
    claim.samples(values, predicted=float(net.ntk(x)[0, 1]), rtol=tolerance.rtol,
                  rivals={"NNGP instead of NTK": float(net.nngp(x)[0, 1])}, name="ntk[0,1]")


@pytest.mark.claim("mine.nngp_psd", source="a kernel is a covariance",
                   statement="the NNGP Gram of distinct points is positive semi-definite")
def test_nngp_psd(claim):
    x = sphere(8, 4, claim.seed)
    k = FullyConnected(depth=2, width=1).nngp(x)
    claim.close(k, k.T, atol=1e-12, name="symmetry")
    claim.at_least(float(np.linalg.eigvalsh(k).min()), 0.0)


@pytest.mark.claim("mine.gp_vs_ntk", source="arXiv:2501.10929, abstract",
                   statement="NNGP-kernel regression errs within 5% of NTK regression", expect="holds")
@pytest.mark.tolerance(rtol=0.05)
@pytest.mark.parametrize("depth", [1, 2])
def test_gp_close_to_ntk(depth, claim, tolerance):
    data = liu2025_sphere(seed=claim.seed, n=300, n_train=200)
    net = FullyConnected(depth=depth, width=1)  # only its infinite-width kernels are used
    rmse = {}
    for name, k in (("nngp", net.nngp), ("ntk", net.ntk)):
        pred = kernel_regression(k(data.x_train), data.y_train, k(data.x_test, data.x_train))
        rmse[name] = float(((pred - data.y_test) ** 2).mean() ** 0.5)
    claim.close(rmse["nngp"], rmse["ntk"], rtol=tolerance.rtol, name="rmse")
