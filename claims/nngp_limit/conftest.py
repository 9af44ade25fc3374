"""The NNGP limit -- Lee et al. (2018), *Deep Neural Networks as Gaussian Processes* (arXiv:1711.00165)
and Matthews et al. (2018), *Gaussian Process Behaviour in Wide Deep Neural Networks*
(arXiv:1804.11271): settings and shared work.

``SETTINGS[profile]`` (``quick``: 2 CPU cores; ``paper``: more networks and wider, a GPU):

``model`` -- the networks sampled at initialization (every claim):
    ``depth``, ``activation``, ``W_std``, ``b_std``: hidden layers, activation and the prior of
    weights/biases (NTK parameterization; at initialization it gives the same function as the
    standard one). ``out_dim``: readout units per network -- independent given the hidden layers,
    so one network gives ``out_dim`` draws of its conditional output distribution.
    ``n_inputs``, ``dim``: the inputs, distinct points on the sphere S^(dim-1).
``covariance`` -- claim ``nngp_limit.covariance``: ``width`` and ``seeds`` (networks) of the Monte
    Carlo covariance; ``atol``: tolerance on the correlation scale (the claim explains it).
``normality`` -- claims ``nngp_limit.gaussian_wide`` and ``nngp_limit.gaussian_narrow_control``:
    the wide networks are those of ``covariance`` (the same draws); ``narrow_width`` and
    ``seeds`` for the control; ``alpha``: the Kolmogorov-Smirnov test's level.
``kurtosis`` -- claim ``nngp_limit.kurtosis_vanishes``: ``widths``; ``seeds`` networks per width
    in ``groups`` independent groups (one excess-kurtosis estimate per group, so the slope has
    replicates at each width).

Outputs are sampled in float64 (JAX inside :func:`pytest_ntk.science.numerics.x64`), ``chunk`` networks
at a time, and cached through ``ntk_cache`` under a key naming every input and a digest of this
file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pytest_ntk.verdicts import derive_seed

SUITE = "nngp_limit"
RECIPE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

SETTINGS = {
    "quick": {
        "model": {"depth": 2, "activation": "relu", "W_std": 2**0.5, "b_std": 0.1, "out_dim": 256,
                  "n_inputs": 4, "dim": 8},
        "covariance": {"width": 512, "seeds": 400, "atol": 0.03},
        "normality": {"narrow_width": 2, "seeds": 400, "alpha": 0.01},
        "kurtosis": {"widths": [32, 64, 128, 256], "seeds": 400, "groups": 4},
        "chunk": 50,
    },
    "paper": {
        "model": {"depth": 2, "activation": "relu", "W_std": 2**0.5, "b_std": 0.1, "out_dim": 256,
                  "n_inputs": 4, "dim": 8},
        "covariance": {"width": 2048, "seeds": 2000, "atol": 0.03},
        "normality": {"narrow_width": 2, "seeds": 2000, "alpha": 0.01},
        "kurtosis": {"widths": [32, 64, 128, 256, 512, 1024], "seeds": 2000, "groups": 8},
        "chunk": 50,
    },
}


@pytest.fixture(scope="session")
def nngp_settings(ntk_profile) -> dict:
    """The active profile's settings (``SETTINGS`` above, with pyproject overrides for ``nngp_limit``)."""
    return ntk_profile.pick(SETTINGS, suite=SUITE)


def make_model(m: dict, width: int):
    from pytest_ntk.science.nets import FullyConnected

    return FullyConnected(m["depth"], width, m["activation"], W_std=m["W_std"], b_std=m["b_std"],
                          out_dim=m["out_dim"])


def inputs(m: dict, base_seed: int) -> np.ndarray:
    from pytest_ntk.science import data

    return data.sphere(m["n_inputs"], m["dim"], derive_seed(base_seed, "nngp_limit/inputs"))


def sample_outputs(model, x: np.ndarray, seed: int, n_networks: int, chunk: int) -> np.ndarray:
    """Outputs at initialization of ``n_networks`` independent networks, (n_networks, n_inputs, out_dim).

    Network ``s`` is ``model.init(jax.random.split(PRNGKey(seed), n_networks)[s], dim, float64)``,
    whatever ``chunk`` (networks vmapped at once; the last chunk is padded and cut).
    """
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science.numerics import x64

    with x64():
        keys = jax.random.split(jax.random.PRNGKey(seed), n_networks)
        xj = jnp.asarray(x, jnp.float64)
        draw = jax.jit(jax.vmap(lambda k: model.apply(model.init(k, x.shape[1], jnp.float64), xj)))
        out = []
        for start in range(0, n_networks, chunk):
            ks = keys[start:start + chunk]
            count = ks.shape[0]
            if count < chunk:
                ks = jnp.concatenate([ks, jnp.broadcast_to(ks[:1], (chunk - count,) + ks.shape[1:])])
            out.append(np.asarray(draw(ks), np.float64)[:count])
    f = np.concatenate(out)
    if not np.all(np.isfinite(f)):
        raise FloatingPointError(f"non-finite outputs sampled from {model.describe()}")
    return f.reshape(n_networks, x.shape[0], -1)


def _cached_outputs(ntk_cache, settings: dict, base_seed: int, width: int, purpose: str, n_networks: int):
    m = settings["model"]
    model = make_model(m, width)
    x = inputs(m, base_seed)
    seed = derive_seed(base_seed, f"nngp_limit/{purpose}", width)
    key = {"suite": SUITE, "what": "outputs", "recipe": RECIPE, "model": model, "x": x, "seed": seed,
           "networks": n_networks, "chunk": settings["chunk"]}
    return ntk_cache.get_or_compute(key, lambda: sample_outputs(model, x, seed, n_networks, settings["chunk"]),
                                    name="nngp_limit_outputs")


@pytest.fixture(scope="session")
def wide_outputs(nngp_settings, ntk_seed, ntk_cache) -> dict:
    """Outputs of the wide networks (covariance and normality claims) and the analytic NNGP."""
    s = nngp_settings
    width = s["covariance"]["width"]
    f = _cached_outputs(ntk_cache, s, ntk_seed, width, "wide", s["covariance"]["seeds"])
    x = inputs(s["model"], ntk_seed)
    return {"f": f, "x": x, "nngp": make_model(s["model"], width).nngp(x), "width": width}


@pytest.fixture(scope="session")
def narrow_outputs(nngp_settings, ntk_seed, ntk_cache) -> dict:
    """Outputs of the narrow networks (negative control) and the analytic NNGP."""
    s = nngp_settings
    width = s["normality"]["narrow_width"]
    f = _cached_outputs(ntk_cache, s, ntk_seed, width, "narrow", s["normality"]["seeds"])
    x = inputs(s["model"], ntk_seed)
    return {"f": f, "x": x, "nngp": make_model(s["model"], width).nngp(x), "width": width}


@pytest.fixture(scope="session")
def kurtosis_outputs(nngp_settings, ntk_seed, ntk_cache) -> dict:
    """Outputs per width of the kurtosis grid: {width: (seeds, n_inputs, out_dim)} and the NNGP."""
    s = nngp_settings
    k = s["kurtosis"]
    x = inputs(s["model"], ntk_seed)
    return {"f": {w: _cached_outputs(ntk_cache, s, ntk_seed, w, "kurtosis", k["seeds"]) for w in k["widths"]},
            "nngp": make_model(s["model"], k["widths"][0]).nngp(x), "widths": list(k["widths"])}
