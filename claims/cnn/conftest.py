"""Convolutional networks and their infinite-channel kernels -- Novak et al. (2019), *Bayesian Deep
Convolutional Networks with Many Channels are Gaussian Processes* (ICLR 2019, arXiv:1810.05148), and
Arora et al. (2019), *On Exact Computation with an Infinitely Wide Neural Net* (NeurIPS 2019,
arXiv:1904.11955): settings and shared work.

Every network is a :class:`pytest_ntk.science.conv.ConvNet` description (NTK parameterization, 3x3
filters, ``SAME`` padding, ReLU, ``W_std = sqrt 2``, ``b_std = 0.1``); its closed-form kernels
``ConvNet.nngp`` (CNN-GP) and ``ConvNet.ntk`` (CNTK) are the predictions. The finite networks are
evaluated by :class:`PatchNet`, the same function as ``ConvNet.apply`` written as patches times a
matrix (see its docstring: XLA's CPU convolution in float64 is about 100x slower than a float64
matrix product, and every finite network here runs in float64); each computation checks on its
first network that the two agree to rounding (:func:`check_patch_net`).

``SETTINGS[profile]`` (``quick``: 2 CPU cores, a few minutes; ``paper``: larger, for a GPU -- not the
papers' own scale, CIFAR-10 at 32x32 with up to 21 layers, which the float64 recursion's
``(H W)^2`` spatial covariances put out of reach here):

``images`` -- inputs of every claim: ``height`` x ``width`` x ``channels`` Gaussian images, each
    pixel plus ``smooth`` times its four (periodic) neighbours, so that neighbouring pixels are
    correlated as in natural images; each image scaled to mean square 1 per entry.
``net`` -- ``kernel_size``, ``padding``, ``activation``, ``W_std``, ``b_std``, shared by every network.
``convergence`` -- claims ``cnn.cntk_convergence_rate`` and ``cnn.cntk_mean``: ``depth`` convolutions
    with global average pooling, ``n_images`` inputs, ``channels`` (the widths), ``seeds`` networks
    per width; ``atol``: tolerance of the seed mean at the widest width on the correlation scale.
``lcn`` -- claims ``cnn.no_pooling_no_weight_sharing`` and ``cnn.pooling_weight_sharing_control``:
    ``depth``, ``n_images``, ``channels`` and ``seeds`` of the finite locally connected networks (and
    of the finite CNNs beside them); ``atol`` on the correlation scale.
``training`` -- claims ``cnn.trained_net_follows_cntk`` and ``cnn.trained_net_gap_rate``: a
    ``depth``-convolution CNN with global average pooling trained by full-batch gradient descent
    (float64, loss ``1/(2n) ||f - y||^2``) on ``n_train`` images, evaluated on ``n_test`` others;
    ``channels`` (the widths), ``seeds`` networks per width, ``steps`` steps at ``lr_fraction`` of
    the CNTK's critical rate ``2 n / lambda_max``; ``atol``: tolerance of the widest networks' gap.

Everything expensive runs once per session through ``pytest_ntk.Suite`` (cached under the settings it
uses, the base seed, a digest of this file, and per width through ``run.cached``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pytest_ntk import Suite

SETTINGS = {
    "quick": {
        "images": {"height": 6, "width": 6, "channels": 3, "smooth": 0.5},
        "net": {"kernel_size": 3, "padding": "SAME", "activation": "relu", "W_std": 2**0.5, "b_std": 0.1},
        "convergence": {"depth": 2, "n_images": 6, "channels": [32, 64, 128, 256, 512], "seeds": 24,
                        "atol": 0.06},
        "lcn": {"depth": 2, "n_images": 6, "channels": 128, "seeds": 96, "atol": 0.03},
        "training": {"depth": 1, "n_train": 16, "n_test": 16, "channels": [128, 256, 512, 1024], "seeds": 6,
                     "lr_fraction": 0.5, "steps": 100, "atol": 0.15},
    },
    "paper": {
        "images": {"height": 8, "width": 8, "channels": 3, "smooth": 0.5},
        "net": {"kernel_size": 3, "padding": "SAME", "activation": "relu", "W_std": 2**0.5, "b_std": 0.1},
        "convergence": {"depth": 3, "n_images": 8, "channels": [64, 128, 256, 512, 1024, 2048], "seeds": 32,
                        "atol": 0.06},
        "lcn": {"depth": 3, "n_images": 8, "channels": 256, "seeds": 256, "atol": 0.03},
        "training": {"depth": 2, "n_train": 64, "n_test": 32, "channels": [256, 512, 1024, 2048], "seeds": 8,
                     "lr_fraction": 0.5, "steps": 300, "atol": 0.15},
    },
}

suite = Suite("cnn", __file__, SETTINGS)
settings, _record = suite.fixtures()


# ------------------------------------------------------------------------------ inputs
def images(s_images: dict, n: int, seed: int) -> np.ndarray:
    """``n`` images ``(n, H, W, C)`` (``settings['images']``): Gaussian pixels plus ``smooth`` times
    their four periodic neighbours, each image scaled to mean square 1 per entry."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, s_images["height"], s_images["width"], s_images["channels"]))
    a = float(s_images["smooth"])
    x = x + a * (np.roll(x, 1, 1) + np.roll(x, -1, 1) + np.roll(x, 1, 2) + np.roll(x, -1, 2))
    return x / np.sqrt(np.mean(x**2, axis=(1, 2, 3), keepdims=True))


def convnet(s_net: dict, depth: int, channels: int, readout: str = "global_avg"):
    """The suite's :class:`~pytest_ntk.science.conv.ConvNet` (NTK parameterization, one output)."""
    from pytest_ntk.science.conv import ConvNet

    return ConvNet(depth=depth, channels=channels, kernel_size=s_net["kernel_size"], padding=s_net["padding"],
                   activation=s_net["activation"], W_std=s_net["W_std"], b_std=s_net["b_std"], readout=readout)


def fully_connected(s_net: dict, depth: int):
    """A fully connected net with the same activation and weight/bias scales (for rival kernels)."""
    from pytest_ntk.science.nets import FullyConnected

    return FullyConnected(depth, 1, s_net["activation"], W_std=s_net["W_std"], b_std=s_net["b_std"])


# ---------------------------------------------------------------- finite networks, float64
def _patches(h, kernel, stride, pads, out_hw):
    """``(n, H_out, W_out, k_h k_w, C)``: the (zero-padded) input patch of each output position,
    offsets in row-major filter order (that of ``W.reshape(k_h k_w, C_in, C_out)`` for HWIO ``W``)."""
    import jax.numpy as jnp

    (kh, kw), (th, tw), ((lh, hh), (lw, hw)), (oh, ow) = kernel, stride, pads, out_hw
    hp = jnp.pad(h, ((0, 0), (lh, hh), (lw, hw), (0, 0)))
    cols = [hp[:, a:a + th * (oh - 1) + 1:th, b:b + tw * (ow - 1) + 1:tw, :] for a in range(kh) for b in range(kw)]
    return jnp.stack(cols, axis=3)


@dataclass(frozen=True)
class PatchNet:
    """``ConvNet.apply`` as patches times a matrix, for inputs of shape ``shape = (H, W, C)``.

    ``z[o] = W_std / sqrt(f_l) * sum_{a, c} h[t o + a - p, c] w[a, c, :] + b_std * b`` is computed as
    the einsum of the ``(k_h k_w, C_in)`` input patch at each output position with ``w`` reshaped to
    ``(k_h k_w, C_in, C_out)``: the same arithmetic as ``jax.lax.conv_general_dilated``, as a matrix
    product, which XLA runs fast in float64 on a CPU (its float64 convolution is a naive loop, ~100x
    slower). Parameters are ``ConvNet.init``'s. ``apply`` takes ``(n, H, W, C)`` images or their
    flattened rows ``(n, H W C)`` (as :func:`pytest_ntk.science.train.train` passes them); ``init``
    ignores its ``in_dim`` argument (the shape is fixed here). Frozen and hashable, so ``apply`` can
    be a static argument of compiled code.
    """

    net: object  # a ConvNet
    shape: tuple

    def init(self, key, in_dim=None, dtype=None):
        import jax.numpy as jnp

        return self.net.init(key, self.shape, jnp.float64 if dtype is None else dtype)

    def features(self, params, x):
        """The readout features ``g`` (``(n, f_r)``), as :meth:`ConvNet.readout_features`."""
        import jax.numpy as jnp

        from pytest_ntk.science.activations import ACTIVATIONS

        net = self.net
        geo = net.geometry(self.shape)
        phi = ACTIVATIONS[net.activation]
        h = jnp.reshape(x, (-1,) + tuple(self.shape))
        for layer in range(net.depth):
            oh, ow, _ = geo.shapes[layer + 1]
            P = _patches(h, net.kernel_size, net.stride, geo.pads[layer], (oh, ow))
            W = params[layer]["W"]
            z = jnp.einsum("nhwkc,kco->nhwo", P, jnp.reshape(W, (-1,) + W.shape[2:]))
            h = phi(net.W_std / math.sqrt(geo.fan_ins[layer]) * z + net.b_std * params[layer]["b"])
        if net.readout == "global_avg":
            return jnp.mean(h, axis=(1, 2))
        if net.readout == "flatten":
            return jnp.reshape(h, (h.shape[0], -1))
        raise ValueError(f"PatchNet: readout {net.readout!r} is not used in this suite")

    def apply(self, params, x):
        g = self.features(params, x)
        f = self.net.W_std / math.sqrt(g.shape[1]) * (g @ params[-1]["W"]) + self.net.b_std * params[-1]["b"]
        return f[:, 0]


def check_patch_net(model: PatchNet, params, x: np.ndarray) -> float:
    """Raise unless ``model.apply`` equals ``ConvNet.apply`` (XLA's convolution) on ``x`` to rounding.

    Both in float64; the tolerance ``1e-12 * max|f|`` is far above float64 rounding (a few 1e-16 for
    these sums) and far below any real difference. Returns the relative difference.
    """
    import jax.numpy as jnp

    from pytest_ntk.science.numerics import x64

    with x64():
        xj = jnp.asarray(x, jnp.float64)
        a = np.asarray(model.net.apply(params, xj), np.float64)
        b = np.asarray(model.apply(params, xj), np.float64)
    rel = float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300))
    if not rel <= 1e-12:
        raise AssertionError(f"PatchNet disagrees with ConvNet.apply for {model.net.describe()}: max relative "
                             f"difference {rel:.3e} (> 1e-12)")
    return rel


@dataclass(frozen=True)
class LocallyConnected:
    """A locally connected network: the convolutions of ``net`` without weight sharing.

    Layer ``l`` has its own filter and bias at every output position ``o``:
    ``z[o] = W_std / sqrt(f_l) * sum_{a, c} h[t o + a - p, c] w_o[a, c, :] + b_std * b_o``, all
    ``w_o, b_o ~ N(0, 1)`` independent (NTK parameterization; same fan-in ``f_l = C_{l-1} k_h k_w``,
    same padding and strides as the convolution). Readout features as ``net.readout`` (flatten or
    global average pooling). Only its empirical NNGP is needed (:meth:`empirical_nngp`).
    """

    net: object  # a ConvNet: depth, channels, filter, padding, activation, scales, readout
    shape: tuple

    def init(self, key, dtype):
        import jax
        import jax.numpy as jnp

        geo = self.net.geometry(self.shape)
        kh, kw = self.net.kernel_size
        keys = jax.random.split(key, 2 * self.net.depth)
        params = []
        for layer in range(self.net.depth):
            oh, ow, _ = geo.shapes[layer + 1]
            c_in = geo.shapes[layer][2]
            params.append({
                "W": jax.random.normal(keys[2 * layer], (oh, ow, kh * kw, c_in, self.net.channels), dtype),
                "b": jax.random.normal(keys[2 * layer + 1], (oh, ow, self.net.channels), dtype),
            })
        return params

    def features(self, params, x):
        import jax.numpy as jnp

        from pytest_ntk.science.activations import ACTIVATIONS

        net = self.net
        geo = net.geometry(self.shape)
        phi = ACTIVATIONS[net.activation]
        h = x
        for layer in range(net.depth):
            oh, ow, _ = geo.shapes[layer + 1]
            P = _patches(h, net.kernel_size, net.stride, geo.pads[layer], (oh, ow))
            z = jnp.einsum("nhwkc,hwkco->nhwo", P, params[layer]["W"])
            h = phi(net.W_std / math.sqrt(geo.fan_ins[layer]) * z + net.b_std * params[layer]["b"])
        if net.readout == "global_avg":
            return jnp.mean(h, axis=(1, 2))
        return jnp.reshape(h, (h.shape[0], -1))


def empirical_nngp_of_features(g, W_std: float, b_std: float):
    """``W_std^2 / f_r <g(x), g(x')> + b_std^2``: the readout's covariance given the features (jax)."""
    return W_std**2 / g.shape[1] * (g @ g.T) + b_std**2


# ----------------------------------------------------------- claims cnn.cntk_* (convergence)
def _ntk_samples(s_net: dict, c: dict, x: np.ndarray, channels: int, seeds: list[int]) -> np.ndarray:
    """Empirical NTKs ``(seeds, n, n)`` of width-``channels`` CNNs, float64, one network per seed."""
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science.empirical import empirical_ntk
    from pytest_ntk.science.numerics import x64

    model = PatchNet(convnet(s_net, c["depth"], channels), tuple(x.shape[1:]))
    out = []
    for i, seed in enumerate(seeds):
        with x64():
            params = model.init(jax.random.PRNGKey(seed), None, jnp.float64)
        if i == 0:
            check_patch_net(model, params, x[:2])
        out.append(empirical_ntk(model.apply, params, x, method="jacobian", dtype=np.float64))
    return np.stack(out)


@suite.computation(uses=("images", "net", "convergence"))
def ntk_convergence(run) -> dict:
    """Empirical NTKs of CNNs at every width, and the closed forms they are compared with."""
    s = run.settings
    c = s["convergence"]
    x = images(s["images"], c["n_images"], run.seed("convergence/images"))
    limit = convnet(s["net"], c["depth"], 1)
    nngp, ntk = limit.nngp_and_ntk(x)
    ntk_flatten = convnet(s["net"], c["depth"], 1, readout="flatten").ntk(x)
    samples = {}
    for i, channels in enumerate(c["channels"]):
        seeds = run.seeds(f"convergence/channels={channels}", c["seeds"])
        samples[channels] = run.cached(
            run.key("ntk_samples", net=s["net"], images=s["images"], depth=c["depth"], n=c["n_images"],
                    channels=channels, seeds=seeds),
            lambda channels=channels, seeds=seeds: _ntk_samples(s["net"], c, x, channels, seeds),
            name="ntk_samples", code=_ntk_samples)
        run.advance(i + 1, len(c["channels"]), "widths")
    return {"x": x, "channels": list(c["channels"]), "samples": samples, "ntk": ntk, "nngp": nngp,
            "ntk_flatten": ntk_flatten}


# --------------------------------------------------- claims cnn.*weight_sharing* (LCN vs CNN)
def _nngp_samples(s_net: dict, c: dict, x: np.ndarray, seeds_lcn: list[int], seeds_cnn: list[int]) -> dict:
    """Empirical NNGPs ``(seeds, n, n)`` of finite LCNs and CNNs, each with both readouts.

    One network per seed gives both readouts (the same hidden layers read out by flatten and by
    global average pooling): ``{"lcn": {"flatten": ..., "global_avg": ...}, "cnn": {...}}``.
    """
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science.numerics import x64

    shape = tuple(x.shape[1:])
    out = {}
    for kind, seeds in (("lcn", seeds_lcn), ("cnn", seeds_cnn)):
        flat_net = convnet(s_net, c["depth"], c["channels"], readout="flatten")
        gap_net = convnet(s_net, c["depth"], c["channels"], readout="global_avg")
        if kind == "lcn":
            flat, gap = LocallyConnected(flat_net, shape), LocallyConnected(gap_net, shape)

            def init(key):
                return flat.init(key, jnp.float64)
        else:
            flat, gap = PatchNet(flat_net, shape), PatchNet(gap_net, shape)

            def init(key):
                return flat.init(key, None, jnp.float64)

        with x64():
            xj = jnp.asarray(x, jnp.float64)

            @jax.jit
            def kernels(key):
                params = init(key)
                return (empirical_nngp_of_features(flat.features(params, xj), flat_net.W_std, flat_net.b_std),
                        empirical_nngp_of_features(gap.features(params, xj), gap_net.W_std, gap_net.b_std))

            if kind == "cnn":
                check_patch_net(flat, init(jax.random.PRNGKey(seeds[0])), x[:2])
            pairs = [kernels(jax.random.PRNGKey(seed)) for seed in seeds]
        out[kind] = {"flatten": np.stack([np.asarray(p[0], np.float64) for p in pairs]),
                     "global_avg": np.stack([np.asarray(p[1], np.float64) for p in pairs])}
    return out


@suite.computation(uses=("images", "net", "lcn"))
def weight_sharing(run) -> dict:
    """Empirical NNGPs of finite LCNs and CNNs (both readouts) and the closed forms."""
    s = run.settings
    c = s["lcn"]
    x = images(s["images"], c["n_images"], run.seed("lcn/images"))
    seeds_lcn = run.seeds("lcn/networks", c["seeds"])
    seeds_cnn = run.seeds("lcn/cnn-networks", c["seeds"])
    samples = _nngp_samples(s["net"], c, x, seeds_lcn, seeds_cnn)
    xf = x.reshape(x.shape[0], -1)
    return {
        "x": x,
        "samples": samples,
        "cnn_gp": {ro: convnet(s["net"], c["depth"], 1, readout=ro).nngp(x) for ro in ("flatten", "global_avg")},
        "fc_gp": fully_connected(s["net"], c["depth"]).nngp(xf),
    }


# -------------------------------------------------- claims cnn.trained_* (training vs CNTK)
def teacher_targets(x: np.ndarray, seed: int) -> np.ndarray:
    """Targets of a fixed one-channel convolutional teacher, standardised over the given images:
    ``y(x) = sum_s tanh(2 <v, patch_s(x)> / sqrt(9 C))`` over the zero-padded 3x3 patches, ``v ~ N(0, I)``."""
    rng = np.random.default_rng(seed)
    n, h, w, c = x.shape
    v = rng.standard_normal((3, 3, c))
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = np.zeros(n)
    for i in range(h):
        for j in range(w):
            y += np.tanh(2.0 * np.einsum("nabc,abc->n", xp[:, i:i + 3, j:j + 3, :], v) / math.sqrt(9 * c))
    return (y - y.mean()) / y.std()


def _train_width(s_net: dict, c: dict, data: dict, channels: int, seeds: list[int], lr: float) -> dict:
    """Train ``seeds`` width-``channels`` CNNs (float64, full batch); their outputs before and after."""
    import jax
    import jax.numpy as jnp

    from pytest_ntk.science.numerics import x64
    from pytest_ntk.science.train import train

    x, xt = data["x_train"], data["x_test"]
    model = PatchNet(convnet(s_net, c["depth"], channels), tuple(x.shape[1:]))
    with x64():
        check_patch_net(model, model.init(jax.random.PRNGKey(seeds[0]), None, jnp.float64), x[:2])
    res = train(model, x.reshape(x.shape[0], -1), data["y_train"], seeds=seeds, steps=c["steps"], lr=lr,
                dtype=np.float64, x_eval=xt.reshape(xt.shape[0], -1))
    return {"f0_train": res.f0_train, "f0_test": res.f0_test, "f_train": res.f_train, "f_test": res.f_test,
            "final_loss": res.final_loss}


@suite.computation(uses=("images", "net", "training"))
def trained_networks(run) -> dict:
    """Trained CNNs at every width, the kernels, and every kernel's prediction from each network's f0."""
    from pytest_ntk.science import predict

    s = run.settings
    c = s["training"]
    n, m = c["n_train"], c["n_test"]
    x_all = images(s["images"], n + m, run.seed("training/images"))
    y_all = teacher_targets(x_all, run.seed("training/teacher"))
    data = {"x_train": x_all[:n], "y_train": y_all[:n], "x_test": x_all[n:], "y_test": y_all[n:]}
    gap = convnet(s["net"], c["depth"], 1)
    nngp, cntk = gap.nngp_and_ntk(x_all)
    kernels = {
        "cntk": cntk,
        "nngp": nngp,
        "fc_ntk": fully_connected(s["net"], c["depth"]).ntk(x_all.reshape(n + m, -1)),
        "flatten_cntk": convnet(s["net"], c["depth"], 1, readout="flatten").ntk(x_all),
    }
    lr = c["lr_fraction"] * predict.critical_lr(cntk[:n, :n])
    t = lr * c["steps"]
    runs = {}
    for i, channels in enumerate(c["channels"]):
        seeds = run.seeds(f"training/channels={channels}", c["seeds"])
        r = run.cached(
            run.key("train_width", net=s["net"], images=s["images"], depth=c["depth"], n_train=n, n_test=m,
                    steps=c["steps"], channels=channels, seeds=seeds, lr=lr),
            lambda channels=channels, seeds=seeds: _train_width(s["net"], c, data, channels, seeds, lr),
            name="train_width", code=_train_width)
        preds = {}
        for name, K in kernels.items():
            per_seed = [predict.gradient_descent_mse(K[:n, :n], data["y_train"], K[n:, :n], t, lr=lr,
                                                     f0_train=r["f0_train"][k], f0_test=r["f0_test"][k])
                        for k in range(len(seeds))]
            preds[name] = {"train": np.stack([p[0] for p in per_seed]), "test": np.stack([p[1] for p in per_seed])}
        runs[channels] = {**r, "predictions": preds, "seeds": seeds}
        run.advance(i + 1, len(c["channels"]), "widths")
    return {"data": data, "kernels": kernels, "lr": float(lr), "t": float(t), "channels": list(c["channels"]),
            "runs": runs}
