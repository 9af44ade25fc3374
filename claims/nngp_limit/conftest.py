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
    ``seeds`` for the control; ``alpha``: the Kolmogorov-Smirnov test's level; ``m4_atol``: the
    tolerance on the whitened outputs' standardised fourth moment E[z^4]/E[z^2]^2 (the claim explains it).
``kurtosis`` -- claim ``nngp_limit.kurtosis_vanishes``: ``widths``; ``seeds`` networks per width
    in ``groups`` independent groups (one excess-kurtosis estimate per group, so the slope has
    replicates at each width).

Outputs are sampled in float64 (JAX inside :func:`pytest_ntk.science.numerics.x64`), ``chunk`` networks
at a time, by the computation ``sampled_outputs`` (``pytest_ntk.Suite``: cached under the model
settings, the base seed, its arguments and a digest of this file).
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_ntk import Suite

SETTINGS = {
    "quick": {
        "model": {"depth": 2, "activation": "relu", "W_std": 2**0.5, "b_std": 0.1, "out_dim": 256,
                  "n_inputs": 4, "dim": 8},
        "covariance": {"width": 512, "seeds": 400, "atol": 0.03},
        "normality": {"narrow_width": 2, "seeds": 400, "alpha": 0.01, "m4_atol": 0.25},
        "kurtosis": {"widths": [32, 64, 128, 256], "seeds": 400, "groups": 4},
        "chunk": 50,
    },
    "paper": {
        "model": {"depth": 2, "activation": "relu", "W_std": 2**0.5, "b_std": 0.1, "out_dim": 256,
                  "n_inputs": 4, "dim": 8},
        "covariance": {"width": 2048, "seeds": 2000, "atol": 0.03},
        "normality": {"narrow_width": 2, "seeds": 2000, "alpha": 0.01, "m4_atol": 0.25},
        "kurtosis": {"widths": [32, 64, 128, 256, 512, 1024], "seeds": 2000, "groups": 8},
        "chunk": 50,
    },
}

suite = Suite("nngp_limit", __file__, SETTINGS)
settings, _record = suite.fixtures()


def make_model(m: dict, width: int):
    from pytest_ntk.science.nets import FullyConnected

    return FullyConnected(m["depth"], width, m["activation"], W_std=m["W_std"], b_std=m["b_std"],
                          out_dim=m["out_dim"])


def inputs(run, m: dict) -> np.ndarray:
    from pytest_ntk.science import data

    return data.sphere(m["n_inputs"], m["dim"], run.seed("inputs"))


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


@suite.computation(uses=("model", "chunk"))
def sampled_outputs(run, width: int, purpose: str, n_networks: int) -> np.ndarray:
    """Outputs of ``n_networks`` width-``width`` networks on the inputs, seed stream ``purpose``/width."""
    m = run.settings["model"]
    return sample_outputs(make_model(m, width), inputs(run, m), run.seed(purpose, width), n_networks,
                          run.settings["chunk"])


@pytest.fixture(scope="session")
def wide_outputs(request, settings, sampled_outputs) -> dict:
    """Outputs of the wide networks (covariance and normality claims), the analytic NNGP and NTK."""
    width = settings["covariance"]["width"]
    x = inputs(suite.run(request.config), settings["model"])
    model = make_model(settings["model"], width)
    return {"f": sampled_outputs(width, "wide", settings["covariance"]["seeds"]), "x": x,
            "nngp": model.nngp(x), "ntk": model.ntk(x), "width": width}


@pytest.fixture(scope="session")
def narrow_outputs(request, settings, sampled_outputs) -> dict:
    """Outputs of the narrow networks (negative control) and the analytic NNGP."""
    width = settings["normality"]["narrow_width"]
    x = inputs(suite.run(request.config), settings["model"])
    return {"f": sampled_outputs(width, "narrow", settings["normality"]["seeds"]), "x": x,
            "nngp": make_model(settings["model"], width).nngp(x), "width": width}


@pytest.fixture(scope="session")
def kurtosis_outputs(request, settings, sampled_outputs) -> dict:
    """Outputs per width of the kurtosis grid: {width: (seeds, n_inputs, out_dim)} and the NNGP."""
    k = settings["kurtosis"]
    x = inputs(suite.run(request.config), settings["model"])
    return {"f": {w: sampled_outputs(w, "kurtosis", k["seeds"]) for w in k["widths"]},
            "nngp": make_model(settings["model"], k["widths"][0]).nngp(x), "widths": list(k["widths"])}
