"""Infinite-width kernels: the nine Liu et al. (2025) kernels over the paper's 50 trials, and the
FullyConnected NNGP/NTK recursion.

Run: ``uv run pytest benchmarks/bench_kernels.py`` (pytest-benchmark).

The audit builds, for each of 50 trials, the nine 1000 x 1000 Gram matrices of all 1000 inputs
(then slices train/train and test/train blocks). ``test_liu2025_nine_kernels_50_trials`` times
exactly that, for the published and the corrected angle; the goal is under 10 s on 2 CPU cores
(``extra_info["target_s"]``). Inputs are drawn outside the timed region (uniform(-5, 7) rows
scaled to unit norm, as :func:`pytest_ntk.science.data.liu2025_sphere` draws them). One round each:
a round is 50 trials already, and the machine is shared.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_ntk.science.kernels import analytic, liu2025
from pytest_ntk.science.nets import FullyConnected

N_TRIALS, N, D = 50, 1000, 15
TARGET_S = 10.0


def _inputs(n_trials: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5.0, 7.0, size=(n_trials, N, D))
    return x / np.linalg.norm(x, axis=2, keepdims=True)


@pytest.fixture(scope="module")
def trials():
    return _inputs(N_TRIALS)


def _run_all(xs, as_published):
    total = 0.0
    for kernels in liu2025.kernels_over_trials(xs, as_published=as_published):
        total += sum(float(k[0, 0]) for k in kernels.values())  # touch every result
    return total


@pytest.mark.parametrize("form", ["published", "corrected"])
def test_liu2025_nine_kernels_50_trials(benchmark, trials, form):
    benchmark.group = "liu2025: 9 kernels x 50 trials, n=1000"
    benchmark.extra_info.update(
        {"trials": N_TRIALS, "n": N, "d": D, "kernels": len(liu2025.KERNEL_NAMES),
         "target_s": TARGET_S}
    )
    result = benchmark.pedantic(
        _run_all, args=(trials, form == "published"), rounds=1, iterations=1, warmup_rounds=0
    )
    assert np.isfinite(result)


def test_liu2025_nine_kernels_one_trial(benchmark, trials):
    benchmark.group = "liu2025: 9 kernels, one trial, n=1000"
    out = benchmark.pedantic(liu2025.all_kernels, args=(trials[0],), rounds=5, warmup_rounds=1)
    assert set(out) == set(liu2025.KERNEL_NAMES)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_fully_connected_ntk_depth3_n1000(benchmark, trials, activation):
    benchmark.group = "analytic: NNGP + NTK, depth 3, n=1000"
    model = FullyConnected(3, 512, activation, 1.5, 0.1)
    nngp, ntk = benchmark.pedantic(
        analytic.nngp_and_ntk, args=(model, trials[0]), rounds=5, warmup_rounds=1
    )
    assert ntk.shape == (N, N)


# --------------------------------------------------------------- convolutional kernels (CNTK)
CONV_N, CONV_HWC = 32, (8, 8, 3)


def _conv_net():
    from pytest_ntk.science.conv import ConvNet

    return ConvNet(3, 64, 3, 1, "SAME", "relu", 1.5, 0.1, "global_avg")


def _nt_conv_kernel_fn(net):
    """neural-tangents' jitted ``kernel_fn`` of the same network (``stax``, float64 inside x64)."""
    import jax

    from pytest_ntk.science import oracle

    stax = oracle.load().stax
    layers = []
    for _ in range(net.depth):
        layers += [stax.Conv(net.channels, net.kernel_size, net.stride, net.padding,
                             W_std=net.W_std, b_std=net.b_std), stax.Relu()]
    layers += [stax.GlobalAvgPool(), stax.Dense(1, W_std=net.W_std, b_std=net.b_std)]
    return jax.jit(stax.serial(*layers)[2], static_argnames="get")


@pytest.mark.parametrize("implementation", ["closed_form", "neural_tangents"])
def test_conv_ntk_depth3_global_pool_n32(benchmark, implementation):
    """Side by side: ConvNet's float64 numpy CNTK and neural-tangents' jitted stax kernel_fn.

    Same network (3 convolutions 3x3 SAME, relu, global average pooling, dense readout), same
    32 images of 8x8x3, both float64: the full (n, n, 8, 8, 8, 8) spatial covariance either way.
    The compilation of the jitted kernel_fn is a warm-up round, outside the timing.
    """
    from pytest_ntk.science import oracle
    from pytest_ntk.science.numerics import x64

    benchmark.group = "conv: NTK, depth 3, global pool, n=32 of 8x8x3"
    net = _conv_net()
    x = np.random.default_rng(0).normal(size=(CONV_N,) + CONV_HWC)
    benchmark.extra_info.update({"n": CONV_N, "image": list(CONV_HWC), "net": net.describe()})
    if implementation == "closed_form":
        run = net.ntk
    else:
        if not oracle.available():
            pytest.skip(oracle.reason())
        kernel_fn = _nt_conv_kernel_fn(net)

        def run(x):
            with x64():
                return np.asarray(kernel_fn(x, None, get="ntk"), np.float64)

    out = benchmark.pedantic(run, args=(x,), rounds=3, warmup_rounds=1)
    assert out.shape == (CONV_N, CONV_N)
