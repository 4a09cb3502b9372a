"""Pullback metric of a generator and a damped natural-gradient optimiser (seed 001 §8-§16).

A generator ``G_theta : z -> x`` pushes the latent law forward, P_theta = (G_theta)_# P_Z
(seed 001 Assumption 6.4). The pullback of the Otto metric (seed 001 Def. 8.1, Def. 12.1),

    g_ij(theta) = <d_i P_theta, d_j P_theta>_{P_theta},

is estimated as in seed 001 §9.1 / Remark 12.2 by the Gauss-Newton matrix

    g_hat_N = (1/N) sum_i J_theta(z_i)^T J_theta(z_i),     J_theta(z) = dG_theta(z)/dtheta,

with ``x`` of any shape flattened to ``d_out`` numbers, so ``J_theta(z)`` is ``d_out x n``.
For a 1-D output every vector field is a gradient and g_hat_N is an unbiased estimate of the
Otto pullback metric itself; in higher dimension it over-estimates it (it ignores the
projection onto gradient fields).

:class:`PullbackMetric` gives g_hat_N densely (``torch.func.vmap(jacrev)``), matrix-free
(one JVP and one VJP per product) and as the stacked Jacobian. :class:`NaturalGradient` is a
``torch.optim.Optimizer`` implementing seed 001 Algorithm 2 (§15),

    theta_{k+1} = theta_k - eta (g_hat + lambda I)^{-1} grad J(theta_k),

with heavy-ball momentum in the form of seed 001 Prop. 8.2 / Prop. 16.1,

    theta_k = theta_{k-1} + beta (theta_{k-1} - theta_{k-2}) - eta (g_hat + lambda I)^{-1} grad J,

three linear solvers (Cholesky, conjugate gradients, Woodbury), metric reuse over several
steps, latent subsampling, and an optional sufficient-decrease safeguard (Prop. 8.3).
:func:`metric_concentration` measures the Monte-Carlo error of g_hat_N and of the natural
gradient vector against N (seed 001 Lemma 9.2, Cor. 9.3: expected rate N^{-1/2}).

Fast path. For MLP generators (``nn.Linear`` layers and elementwise activations, see
:func:`structured_support`) the Jacobian is kept in per-sample factored form (layer inputs
and backward signals, Goodfellow 2015), which gives J J^T, J v and J^T u without forming J;
the Woodbury step is then exact for the fresh full-batch metric at the cost of a few
forward passes. Other modules fall back to ``torch.func``; ``last_info["jacobian_path"]``
says which ran.

Gradient and metric on the same latents. When the loss is a function of the generated
batch G_theta(z_1), ..., G_theta(z_N) only (the discriminator held fixed) and the metric
uses the same latents (the trainer calls ``set_latents(z)`` with the loss batch), then
grad J = J^T r / N with r = N dJ/dx, so grad J lies in range(J^T) and

    (g_hat + lambda I)^{-1} grad J = J^T (J J^T + N lambda I)^{-1} r

stays bounded as lambda -> 0. A subsampled (``metric_samples``) or reused
(``metric_every``) metric has another J, and the part of grad J outside its row space is
multiplied by 1/lambda. ``project=True`` replaces grad J by its damped projection
P_lambda grad J, P_lambda = g_hat (g_hat + lambda I)^{-1} = J^T (J J^T + N lambda I)^{-1} J
(-> the orthogonal projector onto range(J^T) as lambda -> 0), i.e.

    v = (g_hat + lambda I)^{-1} g_hat (g_hat + lambda I)^{-1} grad J
      = N J^T (J J^T + N lambda I)^{-2} J grad J,

which has no 1/lambda term (eigen-direction gains s/(s + lambda)^2 <= 1/(4 lambda) for
eigenvalue s, instead of 1/(s + lambda) with 1/lambda on the null space); for the fresh
full-batch metric it differs from the exact step only by O(lambda / s_min). Relative damping
(lambda scaled by tr(g_hat)/n) was not chosen: it makes lambda unit-free but keeps the 1/lambda
amplification of the out-of-range part.

Parameters are flattened in ``generator.parameters()`` order (trainable ones only), each
tensor row-major, exactly as ``torch.nn.utils.parameters_to_vector`` does; see
:class:`ParamLayout`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from ottokit._checks import check_option

__all__ = [
    "ParamLayout",
    "PullbackMetric",
    "NaturalGradient",
    "NonFiniteError",
    "SingularMetricError",
    "ConcentrationResult",
    "metric_concentration",
    "SOLVERS",
    "ELEMENTWISE_ACTIVATIONS",
    "structured_support",
]

SOLVERS = ("auto", "cholesky", "cg", "woodbury")

# "auto" thresholds (see NaturalGradient's docstring)
AUTO_DENSE_MAX_PARAMS = 3000
AUTO_WOODBURY_MAX_ROWS = 4096
AUTO_WOODBURY_MAX_ENTRIES = 20_000_000
DEFAULT_SAMPLER_N = 256
_STATE_KEY = "natural_gradient"


class NonFiniteError(FloatingPointError):
    """The loss or the gradient given to :meth:`NaturalGradient.step` is not finite."""


class SingularMetricError(ValueError):
    """g_hat + damping * I is singular (only possible with damping = 0)."""


# --------------------------------------------------------------------------- layout


class ParamLayout:
    """Flatten/unflatten between named parameter tensors and one vector.

    The order is that of ``module.named_parameters()`` restricted to the parameters with
    ``requires_grad`` (the order of ``module.parameters()``); each tensor is flattened
    row-major. ``flatten`` gives the same vector as
    ``torch.nn.utils.parameters_to_vector(trainable_params)``; ``unflatten`` inverts it and
    returns views of the vector, keyed by parameter name (ready for
    ``torch.func.functional_call``).
    """

    def __init__(self, module: nn.Module) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"generator must be a torch.nn.Module, got {type(module).__name__}")
        named = [(k, p) for k, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError(
                "the generator has no parameter with requires_grad=True; "
                "there is nothing to optimise or to pull the metric back to"
            )
        dtypes = {p.dtype for _, p in named}
        devices = {p.device for _, p in named}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValueError(
                "all trainable generator parameters must share one dtype and device, got "
                f"dtypes {sorted(map(str, dtypes))} and devices {sorted(map(str, devices))}; "
                "call generator.to(dtype) first"
            )
        if not next(iter(dtypes)).is_floating_point:
            raise TypeError("generator parameters must be floating point")
        self.names: tuple[str, ...] = tuple(k for k, _ in named)
        self.shapes: tuple[torch.Size, ...] = tuple(p.shape for _, p in named)
        self.numels: tuple[int, ...] = tuple(p.numel() for _, p in named)
        self.n_params: int = int(sum(self.numels))
        self.dtype: torch.dtype = named[0][1].dtype
        self.device: torch.device = named[0][1].device

    def flatten(self, tensors: Mapping[str, Tensor] | Sequence[Tensor]) -> Tensor:
        """Concatenate tensors (a name -> tensor mapping or a sequence in layout order)."""
        seq = [tensors[k] for k in self.names] if isinstance(tensors, Mapping) else list(tensors)
        if len(seq) != len(self.names):
            raise ValueError(f"expected {len(self.names)} tensors, got {len(seq)}")
        return torch.cat([t.reshape(-1) for t in seq])

    def unflatten(self, vec: Tensor) -> dict[str, Tensor]:
        """Split a vector of length ``n_params`` into name -> tensor views (layout order)."""
        if vec.ndim != 1 or vec.shape[0] != self.n_params:
            raise ValueError(
                f"expected a vector of length n_params={self.n_params}, got shape "
                f"{tuple(vec.shape)}"
            )
        parts = torch.split(vec, self.numels)
        return {k: t.view(s) for k, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def unflatten_rows(self, mat: Tensor) -> dict[str, Tensor]:
        """Split the last axis of ``(..., n_params)`` into name -> ``(..., *shape)`` tensors."""
        lead = mat.shape[:-1]
        parts = torch.split(mat, self.numels, dim=-1)
        return {
            k: t.reshape(*lead, *s) for k, t, s in zip(self.names, parts, self.shapes, strict=True)
        }


# --------------------------------------------------------------------------- structured path

# parameter-free elementwise activations the structured path accepts (exact types only: a
# subclass may override forward)
ELEMENTWISE_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.Tanh, nn.Sigmoid, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU,
    nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.LogSigmoid,
)  # fmt: skip


class _Unsupported(Exception):
    """The generator is outside the structured path (the message says why)."""


def structured_support(generator: nn.Module, latents: Tensor | None = None) -> str | None:
    """Whether the per-sample structured Jacobian applies; ``None`` if yes, else the reason.

    Supported: an ``nn.Linear``, or an ``nn.Sequential`` (nested allowed, exact type so that
    ``forward`` is the plain composition) whose leaves are ``nn.Linear`` layers and the
    parameter-free elementwise activations in :data:`ELEMENTWISE_ACTIVATIONS` (not in-place),
    with no user hooks on any module, and 2-D latents ``(N, k)``. Then sample ``i`` only
    touches row ``i`` of every layer, which is what the per-sample formulas need. At build
    time the path also checks that every ``nn.Linear`` ran exactly once (no weight sharing).
    """
    if latents is not None and latents.ndim != 2:
        return f"latents of shape {tuple(latents.shape)} are not 2-D (N, k)"
    for name, m in generator.named_modules(remove_duplicate=False):
        where = f"module {name or '<root>'!r} ({type(m).__name__})"
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks:
            return f"{where} has hooks registered"
        t = type(m)
        if t is nn.Linear or t is nn.Sequential:
            continue
        if t in ELEMENTWISE_ACTIVATIONS:
            if getattr(m, "inplace", False):
                return f"{where} is in-place"
            if any(True for _ in m.parameters()) or any(True for _ in m.buffers()):
                return f"{where} has parameters or buffers"
            continue
        return f"{where} is not nn.Sequential, nn.Linear or a supported elementwise activation"
    return None


@dataclass
class _Layer:
    a: Tensor  # (N, in) inputs of the layer
    delta: Tensor  # (N, d_out, out): delta[i, k] = d x_{i,k} / d s_i, s = a W^T + b
    weight: str | None  # name of the trainable weight, or None
    bias: str | None  # name of the trainable bias, or None


class _StructuredJacobian:
    """Per-sample Jacobian of an MLP in factored form (Goodfellow 2015; BackPACK, Opacus).

    For a layer s = W a + b the Jacobian rows of output coordinate k at sample i are
    ``d x_{i,k}/dW = delta_i^k (x) a_i`` and ``d x_{i,k}/db = delta_i^k``. The inputs a_i are
    captured by forward hooks and the backward signals delta_i^k by d_out backward passes of
    ``sum_i x_{i,k}`` (samples are independent), so J is never formed for the products.
    """

    def __init__(
        self,
        generator: nn.Module,
        params: Mapping[str, Tensor],
        fixed: Mapping[str, Tensor],
        latents: Tensor,
        layout: ParamLayout,
        own_params: bool = False,
    ) -> None:
        linears = [
            (name, m)
            for name, m in generator.named_modules(remove_duplicate=False)
            if type(m) is nn.Linear
        ]
        calls = [0] * len(linears)
        records: list[tuple[Tensor, Tensor] | None] = [None] * len(linears)

        def make_hook(j: int) -> Callable[..., None]:
            def hook(_m: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
                calls[j] += 1
                records[j] = (inp[0].detach(), out)

            return hook

        handles = [m.register_forward_hook(make_hook(j)) for j, (_, m) in enumerate(linears)]
        try:
            with torch.enable_grad():
                if own_params:  # the module's own (trainable) parameters: no reparametrisation
                    out = generator(latents)
                else:  # detached parameters: the latents carry the graph to every s^l
                    z = latents.detach().requires_grad_(True)
                    out = functional_call(generator, ({**fixed, **params},), (z,))
                n = int(latents.shape[0])
                if out.ndim < 1 or out.shape[0] != n:
                    raise _Unsupported("the output is not (N, ...)")
                out2 = out.reshape(n, -1)
        finally:
            for h in handles:
                h.remove()
        if any(c != 1 for c in calls):
            raise _Unsupported(
                f"an nn.Linear ran {max(calls)} times in one forward pass (shared weights)"
            )
        d = int(out2.shape[1])
        names = set(layout.names)
        layers: list[tuple[str | None, str | None, int]] = []
        for j, (name, m) in enumerate(linears):
            pre = f"{name}." if name else ""
            w = pre + "weight" if pre + "weight" in names else None
            b = pre + "bias" if m.bias is not None and pre + "bias" in names else None
            if w or b:
                layers.append((w, b, j))
        covered = {x for w, b, _ in layers for x in (w, b) if x}
        if covered != names:
            raise _Unsupported(f"parameters {sorted(names - covered)} are not nn.Linear ones")
        s_list = [records[j][1] for _, _, j in layers]  # type: ignore[index]
        per_k: list[tuple[Tensor | None, ...]] = []
        with torch.enable_grad():
            for k in range(d):
                per_k.append(
                    torch.autograd.grad(
                        out2[:, k].sum(), s_list, retain_graph=k < d - 1, allow_unused=True
                    )
                )
        if any(g is None for gs in per_k for g in gs):
            raise _Unsupported("an nn.Linear layer does not reach the output")
        self.layers: list[_Layer] = []
        for idx, (w, b, j) in enumerate(layers):
            delta = torch.stack([gs[idx] for gs in per_k], 1).detach()  # type: ignore[misc]
            a = records[j][0]  # type: ignore[index]
            self.layers.append(_Layer(a=a, delta=delta, weight=w, bias=b))
        self.n, self.d, self.layout = n, d, layout
        self.outputs = out2.detach().reshape(-1)

    def gram(self) -> Tensor:
        """J J^T[(i,k),(j,m)] = sum_l (<a_i, a_j> + 1) <delta_i^{l,k}, delta_j^{l,m}>."""
        n, d = self.n, self.d
        k_mat: Tensor | None = None
        for lay in self.layers:
            c = lay.a @ lay.a.T if lay.weight else None
            if lay.bias:
                c = c + 1.0 if c is not None else torch.ones(n, n, dtype=lay.a.dtype)
            df = lay.delta.reshape(n * d, -1)
            dd = df @ df.T
            term = dd * c if d == 1 else (dd.view(n, d, n, d) * c[:, None, :, None]).view(n * d, -1)
            k_mat = term if k_mat is None else k_mat.add_(term)
        assert k_mat is not None
        return k_mat

    def jvp(self, v: Tensor) -> Tensor:
        """(J v)_{i,k} = sum_l delta_i^{l,k} . (V_l a_i + v_l), flattened ``(N d,)``."""
        parts = self.layout.unflatten(v)
        out: Tensor | None = None
        for lay in self.layers:
            t = lay.a @ parts[lay.weight].T if lay.weight else None
            if lay.bias:
                t = t + parts[lay.bias] if t is not None else parts[lay.bias].expand(self.n, -1)
            assert t is not None
            if self.d == 1:
                r = (lay.delta[:, 0, :] * t).sum(1, keepdim=True)
            else:
                r = torch.bmm(lay.delta, t.unsqueeze(2)).squeeze(2)
            out = r if out is None else out.add_(r)
        assert out is not None
        return out.reshape(-1)

    def vjp(self, u: Tensor) -> Tensor:
        """J^T u: per layer ``sum_{i,k} u_{ik} delta_i^{l,k} a_i^T`` and ``sum u_ik delta``."""
        uu = u.reshape(self.n, self.d)
        grads: dict[str, Tensor] = {}
        for lay in self.layers:
            if self.d == 1:
                e = lay.delta[:, 0, :] * uu
            else:
                e = torch.bmm(uu.unsqueeze(1), lay.delta).squeeze(1)
            if lay.weight:
                grads[lay.weight] = e.T @ lay.a
            if lay.bias:
                grads[lay.bias] = e.sum(0)
        return self.layout.flatten(grads)

    def jacobian(self) -> Tensor:
        """The stacked ``(N d_out, n_params)`` Jacobian, formed from the factors."""
        n, d = self.n, self.d
        rows: dict[str, Tensor] = {}
        for lay in self.layers:
            if lay.weight:
                rows[lay.weight] = (lay.delta[..., None] * lay.a[:, None, None, :]).reshape(
                    n * d, -1
                )
            if lay.bias:
                rows[lay.bias] = lay.delta.reshape(n * d, -1)
        return torch.cat([rows[k] for k in self.layout.names], dim=1)


# --------------------------------------------------------------------------- metric


class PullbackMetric:
    """Gauss-Newton estimate of the pullback metric, g_hat_N = (1/N) sum_i J_i^T J_i.

    Seed 001 Def. 8.1 / §9.1 / Remark 12.2. ``J_i = dG_theta(z_i)/dtheta`` is the
    ``d_out x n_params`` Jacobian of the flattened output at latent ``z_i`` with respect to
    the trainable parameters (flattened by :class:`ParamLayout`).

    Args:
        generator: any ``nn.Module`` mapping a batch of latents ``(N, ...)`` to outputs
            ``(N, ...)`` sample by sample (no batch statistics: the per-sample Jacobian is
            formed with ``vmap``). Buffers and frozen parameters are held fixed.
        latents: ``(N, ...)`` latents; cast to the parameters' dtype and device.
        params: where to evaluate the metric, as a flat vector in layout order; default the
            generator's current parameters (a detached copy is taken either way, so later
            in-place updates of the generator do not change this metric).
        chunk_size: passed to ``torch.func.vmap`` in :meth:`jacobian` to bound memory.
        structured: ``"auto"`` (default) uses the structured per-sample path when
            :func:`structured_support` accepts the generator and falls back to ``torch.func``
            otherwise; ``True`` requires it (ValueError with the reason if unsupported);
            ``False`` always uses ``torch.func``.

    Two paths compute the same quantities (``.path`` says which ran, ``.fallback_reason``
    why the structured one did not):

    * ``"structured"`` (MLPs: ``nn.Linear`` layers and elementwise activations). With the
      layer inputs a_i^l (forward hooks) and the backward signals delta_i^{l,k} =
      dx_{i,k}/ds_i^l (one backward pass per output coordinate k), the Jacobian rows are
      ``delta_i^{l,k} (x) [a_i^l, 1]`` (Goodfellow 2015, as in BackPACK / Opacus), so
      without forming J:
      ``JJ^T[(i,k),(j,m)] = sum_l (<a_i^l, a_j^l> + 1) <delta_i^{l,k}, delta_j^{l,m}>``,
      ``(J v)_{i,k} = sum_l delta_i^{l,k} . (V_l a_i^l + v_l)``,
      ``J^T u = (sum_{i,k} u_{ik} delta_i^{l,k} a_i^{l T}, sum_{i,k} u_{ik} delta_i^{l,k})_l``.
      Cost: d_out backward passes to build, O(N^2 d_out^2 width) for the Gram matrix,
      O(N d_out n) per product.
    * ``"torch.func"`` (any module): ``vmap(jacrev)`` for J, ``torch.func.jvp`` / ``vjp``
      for the products.

    ``.dense()`` is ``(n, n)``; ``.jacobian()`` is ``(N d_out, n)`` with rows ordered sample
    by sample (row ``i*d_out + a`` is output coordinate ``a`` of sample ``i``), so
    ``dense() == jacobian().T @ jacobian() / N``; ``.matvec(v)`` is ``dense() @ v`` without
    forming either matrix (one JVP, one VJP).
    """

    def __init__(
        self,
        generator: nn.Module,
        latents: Tensor,
        *,
        params: Tensor | None = None,
        chunk_size: int | None = None,
        structured: bool | str = "auto",
    ) -> None:
        if not (isinstance(structured, bool) or structured == "auto"):
            raise ValueError(f"structured must be 'auto', True or False, got {structured!r}")
        self.layout = ParamLayout(generator)
        self.generator = generator
        if not isinstance(latents, Tensor):
            raise TypeError(f"latents must be a torch.Tensor, got {type(latents).__name__}")
        if latents.ndim < 1 or latents.shape[0] < 1:
            raise ValueError(
                f"latents must have shape (N, ...) with N >= 1, got {tuple(latents.shape)}"
            )
        self.latents = latents.detach().to(dtype=self.layout.dtype, device=self.layout.device)
        if not torch.isfinite(self.latents).all():
            raise ValueError("latents must be finite")
        own = params is None
        if params is None:
            trainable = dict(generator.named_parameters())
            params = self.layout.flatten({k: trainable[k] for k in self.layout.names})
        elif not isinstance(params, Tensor) or params.shape != (self.layout.n_params,):
            raise ValueError(
                f"params must be a flat tensor of length {self.layout.n_params} "
                f"(ParamLayout order), got {getattr(params, 'shape', type(params))}"
            )
        self.theta = params.detach().clone()
        self.params = self.layout.unflatten(self.theta)
        # everything functional_call needs besides the trainable parameters
        self._fixed = {
            k: p.detach() for k, p in generator.named_parameters() if not p.requires_grad
        }
        self._fixed.update(dict(generator.named_buffers()))
        self.chunk_size = chunk_size
        self.n_samples = int(self.latents.shape[0])
        self.path = "torch.func"
        self.fallback_reason: str | None = None
        self._struct: _StructuredJacobian | None = None
        if structured is not False:
            reason = structured_support(generator, self.latents)
            if reason is None:
                try:
                    self._struct = _StructuredJacobian(
                        generator, self.params, self._fixed, self.latents, self.layout, own
                    )
                except _Unsupported as exc:
                    reason = str(exc)
            if reason is not None and structured is True:
                raise ValueError(
                    f"structured=True but the structured Jacobian does not apply: {reason}; "
                    "use structured='auto' to fall back to torch.func"
                )
            self.fallback_reason = reason
        if self._struct is not None:
            self.path = "structured"
            self.d_out = self._struct.d
        else:
            with torch.no_grad():
                out = self._f_batch(self.params)
            if out.numel() % self.n_samples:
                raise ValueError("the generator must return one output per latent (shape (N, ...))")
            self.d_out = out.numel() // self.n_samples
        self.n_params = self.layout.n_params
        self._vjp_fn: Callable[[Tensor], tuple[dict[str, Tensor]]] | None = None

    # -- the map theta -> G_theta(z), flattened
    def _call(self, p: Mapping[str, Tensor], z: Tensor) -> Tensor:
        return functional_call(self.generator, ({**self._fixed, **p},), (z,))

    def _f_batch(self, p: Mapping[str, Tensor]) -> Tensor:
        return self._call(p, self.latents).reshape(-1)

    def _f_single(self, p: Mapping[str, Tensor], z: Tensor) -> Tensor:
        return self._call(p, z.unsqueeze(0)).reshape(-1)

    def outputs(self) -> Tensor:
        """G_theta(z_i) flattened, shape ``(N d_out,)`` (row order of :meth:`jacobian`)."""
        if self._struct is not None:
            return self._struct.outputs
        with torch.no_grad():
            return self._f_batch(self.params)

    def jacobian(self) -> Tensor:
        """Stacked per-sample Jacobians, ``(N d_out, n_params)`` (``vmap(jacrev)``)."""
        if self._struct is not None:
            return self._struct.jacobian()
        jac = vmap(jacrev(self._f_single), in_dims=(None, 0), chunk_size=self.chunk_size)(
            self.params, self.latents
        )
        n, d = self.n_samples, self.d_out
        return torch.cat([jac[k].reshape(n, d, -1) for k in self.layout.names], dim=2).reshape(
            n * d, self.n_params
        )

    def dense(self) -> Tensor:
        """g_hat_N = J^T J / N as an ``(n_params, n_params)`` matrix."""
        j = self.jacobian()
        return (j.T @ j) / self.n_samples

    def gram(self) -> Tensor:
        """J J^T, ``(N d_out, N d_out)`` (the matrix of the Woodbury form)."""
        if self._struct is not None:
            return self._struct.gram()
        j = self.jacobian()
        return j @ j.T

    def jvp(self, v: Tensor) -> Tensor:
        """J v, shape ``(N d_out,)``: the first-order change of the outputs along ``v``."""
        if self._struct is not None:
            return self._struct.jvp(self._vec(v))
        _, out = jvp(self._f_batch, (self.params,), (self.layout.unflatten(self._vec(v)),))
        return out

    def vjp(self, u: Tensor) -> Tensor:
        """J^T u for ``u`` of shape ``(N d_out,)`` (or the output's shape), ``(n_params,)``."""
        u = u.to(dtype=self.layout.dtype, device=self.layout.device).reshape(-1)
        if u.shape[0] != self.n_samples * self.d_out:
            raise ValueError(
                f"u must have N*d_out={self.n_samples * self.d_out} entries, got {u.shape[0]}"
            )
        if self._struct is not None:
            return self._struct.vjp(u)
        if self._vjp_fn is None:
            _, self._vjp_fn = vjp(self._f_batch, self.params)
        (g,) = self._vjp_fn(u)
        return self.layout.flatten(g)

    def matvec(self, v: Tensor) -> Tensor:
        """g_hat_N v = J^T (J v) / N, matrix-free (one JVP and one VJP)."""
        return self.vjp(self.jvp(v)) / self.n_samples

    def _vec(self, v: Tensor) -> Tensor:
        if not isinstance(v, Tensor) or v.shape != (self.n_params,):
            raise ValueError(
                f"v must be a tensor of shape ({self.n_params},), got "
                f"{getattr(v, 'shape', type(v))}"
            )
        return v.to(dtype=self.layout.dtype, device=self.layout.device)


# --------------------------------------------------------------------------- solvers


def _cg(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor | None,
    iters: int,
    tol: float,
) -> tuple[Tensor, float, int]:
    """Conjugate gradients on a symmetric positive (semi)definite operator.

    Returns the iterate, the relative residual ||b - A x|| / ||b|| of the CG recursion and the
    number of iterations (operator products, plus one for a warm start's initial residual).
    """
    bnorm = float(b.norm())
    if bnorm == 0.0:
        return torch.zeros_like(b), 0.0, 0
    if x0 is None:
        x = torch.zeros_like(b)
        r = b.clone()
    else:
        x = x0.clone()
        r = b - matvec(x)
    p = r.clone()
    rs = r.dot(r)
    done = 0
    for _ in range(iters):
        if math.sqrt(float(rs)) <= tol * bnorm:
            break
        ap = matvec(p)
        pap = p.dot(ap)
        if float(pap) <= 0.0:  # exhausted the range of a singular operator
            break
        alpha = rs / pap
        x.add_(p, alpha=float(alpha))
        r.sub_(ap, alpha=float(alpha))
        rs_new = r.dot(r)
        p.mul_(float(rs_new / rs)).add_(r)
        rs = rs_new
        done += 1
    return x, math.sqrt(float(rs)) / bnorm, done


@dataclass
class _Factor:
    """What a metric refresh leaves behind for the solves until the next refresh."""

    solver: str
    damping: float
    metric: PullbackMetric
    chol: Tensor | None = (
        None  # cholesky: factor of g_hat + lambda I; woodbury: of N lambda I + JJ^T
    )
    jac: Tensor | None = None  # woodbury
    pivot_range: tuple[float, float] | None = None
    eig_range: tuple[float, float] | None = None


def _auto_solver(n_params: int, rows: int, damping: float, structured: bool = False) -> str:
    if structured:
        # the structured Gram matrix is cheap: Woodbury whenever its (rows x rows) system is
        # smaller than the dense (n x n) one
        if n_params <= min(rows, AUTO_DENSE_MAX_PARAMS):
            return "cholesky"
        if damping > 0 and rows <= AUTO_WOODBURY_MAX_ROWS:
            return "woodbury"
        return "cholesky" if n_params <= AUTO_DENSE_MAX_PARAMS else "cg"
    if n_params <= AUTO_DENSE_MAX_PARAMS:
        return "cholesky"
    if (
        damping > 0
        and rows <= AUTO_WOODBURY_MAX_ROWS
        and rows * n_params <= AUTO_WOODBURY_MAX_ENTRIES
    ):
        return "woodbury"
    return "cg"


def _cholesky(a: Tensor, what: str, hint: str, strict: bool) -> Tensor:
    """Cholesky factor; with ``strict`` (undamped metric) a pivot below n eps max diag counts as
    singular too, since rounding can let a singular PSD matrix factorise."""
    chol, info = torch.linalg.cholesky_ex(a)
    piv = torch.diagonal(chol).square() if int(info) == 0 else None
    eps = torch.finfo(a.dtype).eps
    tiny = a.shape[0] * eps * float(torch.diagonal(a).abs().max().clamp_min(eps)) if strict else 0
    if piv is None or float(piv.min()) <= tiny or not torch.isfinite(piv).all():
        raise SingularMetricError(
            f"the {what} is singular (or numerically singular) and cannot be factorised; {hint}"
        )
    return chol


# --------------------------------------------------------------------------- optimiser


class NaturalGradient(torch.optim.Optimizer):
    r"""Damped natural gradient with the pullback metric (seed 001 Algorithm 2, Prop. 16.1).

    Each :meth:`step` reads ``grad J`` from ``.grad`` and moves

        theta_k = theta_{k-1} + beta (theta_{k-1} - theta_{k-2}) - eta v,
        v = (g_hat + lambda I)^{-1} grad J(theta_{k-1}),

    (``eta = lr``, ``lambda = damping``, ``beta = momentum``; beta = 0 is Algorithm 2 /
    Def. 13.1, beta > 0 the heavy-ball form of Prop. 8.2 / 16.1). The displacement
    ``theta_k - theta_{k-1}`` is kept in the state as ``momentum_buffer``.

    The metric ``g_hat = (1/m) sum_i J(z_i)^T J(z_i)`` (:class:`PullbackMetric`) uses the
    latents passed by :meth:`set_latents` (the trainer's batch; the ones set last are kept
    until replaced), subsampled without replacement to ``metric_samples`` of them if given,
    otherwise ``latent_sampler(n)`` with ``n = metric_samples or 256``.

    Solvers for ``(g_hat + lambda I) v = grad J``:

    * ``"cholesky"``: dense g_hat (``vmap(jacrev)``), ``torch.linalg.cholesky``. With
      lambda = 0 a singular metric raises :class:`SingularMetricError` (pivot below
      ``n * eps * max diag``).
    * ``"cg"``: matrix-free conjugate gradients, each product one JVP and one VJP at the
      metric's parameters; at most ``cg_iters`` iterations, stopping early at relative
      residual ``cg_tol``; ``cg_warm_start`` starts from the previous step's ``v`` (one extra
      product).
    * ``"woodbury"``: with J the ``(m d_out, n)`` Jacobian,
      ``(g_hat + lambda I)^{-1} g = (1/lambda)(g - J^T (m lambda I + J J^T)^{-1} J g)``,
      Cholesky of the ``(m d_out)^2`` matrix; needs lambda > 0.
    * ``"auto"`` (decided at each metric refresh, m d_out = rows of J). On the structured
      path: ``"cholesky"`` if ``n <= min(m d_out, 3000)`` (the n x n system is the smaller);
      else ``"woodbury"`` if lambda > 0 and ``m d_out <= 4096`` (Gram matrix cost
      O((m d_out)^2 width), no J formed); else ``"cholesky"`` if ``n <= 3000``; else
      ``"cg"``. On the ``torch.func`` path: ``"cholesky"`` if ``n <= 3000``; else
      ``"woodbury"`` if lambda > 0, ``m d_out <= 4096`` and ``m d_out * n <= 2e7`` (the
      Jacobian's entries); else ``"cg"``.

    Jacobian path (``structured``): ``"auto"`` uses :class:`PullbackMetric`'s structured
    per-sample path for MLPs and ``torch.func`` otherwise (``True`` requires the
    structured path, ``False`` forbids it); every solver uses it (Cholesky forms J from the
    factors, Woodbury uses the factored Gram matrix and products, CG the factored matvec).
    ``project=True``: solve with the damped projection of the gradient (module docstring);
    Woodbury and Cholesky reuse their factor, CG runs twice (2 ``cg_iters``).

    ``metric_every = K`` recomputes the metric and its factorisation at steps 0, K, 2K, ...
    and reuses them in between (for ``"cg"`` the reused object is the linearisation at the
    refresh point). The state holds everything a resume needs: ``step``, ``metric_step``,
    the flat parameters and the latents at which the metric was computed (``metric_params``,
    ``metric_latents``), the subsampling generator's state, ``momentum_buffer``, the previous
    direction and the counters. The factorisation itself is not stored: after
    :meth:`load_state_dict` it is recomputed from ``metric_params`` and ``metric_latents``
    (the same operations on the same inputs, hence bit-identical on the same machine and
    thread count).

    Safeguard (``safeguard=True``, needs a closure). Prop. 8.3 bounds the one-step change for
    an L-smooth J:  J(theta - eta v) <= J(theta) - eta <grad J, v> + (L/2) eta^2 |v|^2.
    L is unknown, so the implemented test is the Armijo sufficient-decrease rule

        J(theta + d) <= J(theta) - c eta <grad J, v>,    c = ``armijo_c`` (1e-4),

    on the trial displacement d (``beta * buffer - eta v``). By Prop. 8.3 it holds for every
    ``eta <= 2 (1 - c) <grad J, v> / (L |v|^2)`` (and with the eigenvalue bound of Prop. 8.3,
    for eta up to ``2(1-c) / (L ||g_hat + lambda I||)``), so halving terminates. On a failure
    the momentum term is dropped first (a restart, counted in ``restarts``), then eta is
    halved up to ``max_shrinks`` times (``shrinks``); if every trial fails, the step is
    rejected (parameters unchanged, buffer cleared, ``rejections``). A non-finite trial loss
    counts as a failure. The smallest L consistent with Prop. 8.3's bound on the last trial,
    ``2 (J(trial) - J + eta <grad J, v>) / (eta^2 |v|^2)``, is reported as ``L_estimate``
    (momentum-free trials only). The closure is called at each trial point; the accepted
    trial is the last one evaluated, so after an accepted step ``.grad`` holds the gradient
    at the new parameters; after a rejection ``.grad`` is reset to the gradient at the
    (unchanged) parameters. The returned loss is the one at the starting point.

    After each step ``last_info`` holds diagnostics (solver, whether the metric was
    refreshed, metric samples, lr used, CG iterations and relative residual, pivot range of
    the Cholesky factor, ``jacobian_path`` and ``fallback_reason``, ``projected``, the
    metric's eigenvalue range when ``eig_diagnostics=True`` and the
    metric is dense, |grad|, |v|, <grad, v>, safeguard counts); ``last_direction`` is ``v``.

    Args:
        params: the generator's trainable parameters (exactly those of ``generator`` with
            ``requires_grad``, in any order; one parameter group).
        generator: the module whose pullback metric is used.
        lr, damping, momentum: eta > 0, lambda >= 0, beta in [0, 1).
        solver, cg_iters, cg_tol, cg_warm_start: see above.
        metric_samples: latents used for the metric (subsample size); None = all given.
        metric_every: K >= 1, steps between metric refreshes.
        latent_sampler: ``n -> (n, ...)`` latents, used when no latents were set.
        safeguard, armijo_c, max_shrinks: see above.
        seed: seed of the generator that draws the latent subsamples.
        eig_diagnostics: compute the metric's eigenvalue range at each dense refresh.
        chunk_size: ``vmap`` chunk size for the Jacobian (memory bound).
        structured: ``"auto"``, True or False: Jacobian path (see above).
        project: use the damped projection of the gradient (see above).

    Raises:
        NonFiniteError: from :meth:`step` when the loss or a gradient is not finite.
        SingularMetricError: from :meth:`step` with ``"cholesky"``, lambda = 0 and a
            singular metric.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        generator: nn.Module,
        lr: float = 0.1,
        damping: float = 1e-3,
        momentum: float = 0.0,
        solver: str = "auto",
        cg_iters: int = 10,
        cg_tol: float = 1e-10,
        cg_warm_start: bool = False,
        metric_samples: int | None = None,
        metric_every: int = 1,
        latent_sampler: Callable[[int], Tensor] | None = None,
        safeguard: bool = False,
        armijo_c: float = 1e-4,
        max_shrinks: int = 10,
        seed: int = 0,
        eig_diagnostics: bool = False,
        chunk_size: int | None = None,
        structured: bool | str = "auto",
        project: bool = False,
    ) -> None:
        _check_hyper(lr, damping, momentum)
        if not (isinstance(structured, bool) or structured == "auto"):
            raise ValueError(f"structured must be 'auto', True or False, got {structured!r}")
        if not isinstance(project, bool):
            raise TypeError(f"project must be True or False, got {project!r}")
        check_option(solver, SOLVERS, "solver")
        if solver == "woodbury" and damping == 0:
            raise ValueError(
                "the woodbury solver needs damping > 0 (it divides by damping); "
                "use damping such as 1e-3, or solver='cholesky' / 'cg'"
            )
        _check_int(cg_iters, "cg_iters", 1)
        _check_int(metric_every, "metric_every", 1)
        _check_int(max_shrinks, "max_shrinks", 0)
        if metric_samples is not None:
            _check_int(metric_samples, "metric_samples", 1)
        if not (isinstance(cg_tol, (int, float)) and cg_tol >= 0):
            raise ValueError(f"cg_tol must be a number >= 0, got {cg_tol!r}")
        if not (isinstance(armijo_c, (int, float)) and 0 < armijo_c < 1):
            raise ValueError(f"armijo_c must lie in (0, 1), got {armijo_c!r}; 1e-4 is usual")
        if latent_sampler is not None and not callable(latent_sampler):
            raise TypeError("latent_sampler must be a callable n -> latents of shape (n, ...)")
        self.layout = ParamLayout(generator)
        plist = list(params)
        if plist and isinstance(plist[0], dict):
            if len(plist) != 1:
                raise ValueError(
                    "NaturalGradient takes a single parameter group (the metric couples all "
                    f"parameters), got {len(plist)} groups"
                )
            plist = list(plist[0]["params"])
        trainable = dict(generator.named_parameters())
        by_id = {id(trainable[k]): k for k in self.layout.names}
        for p in plist:
            if not isinstance(p, Tensor):
                raise TypeError(f"params must be tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(
                    "a parameter passed to NaturalGradient has requires_grad=False; pass "
                    "exactly the generator's trainable parameters, e.g. generator.parameters()"
                )
        ids = [id(p) for p in plist]
        if len(set(ids)) != len(ids) or set(ids) != set(by_id):
            raise ValueError(
                "params must be exactly the generator's trainable parameters (each once): "
                f"got {len(plist)} tensors for {len(by_id)} trainable generator parameters; "
                "use NaturalGradient(generator.parameters(), generator, ...)"
            )
        ordered = [trainable[k] for k in self.layout.names]
        defaults = {"lr": lr, "damping": damping, "momentum": momentum}
        super().__init__(ordered, defaults)
        self.generator = generator
        self.solver = solver
        self.cg_iters = cg_iters
        self.cg_tol = float(cg_tol)
        self.cg_warm_start = bool(cg_warm_start)
        self.metric_samples = metric_samples
        self.metric_every = metric_every
        self.latent_sampler = latent_sampler
        self.safeguard = bool(safeguard)
        self.armijo_c = float(armijo_c)
        self.max_shrinks = max_shrinks
        self.seed = int(seed)
        self.eig_diagnostics = bool(eig_diagnostics)
        self.chunk_size = chunk_size
        self.structured = structured
        self.project = project
        self._latents: Tensor | None = None
        self._factor: _Factor | None = None
        self.last_info: dict[str, Any] = {}
        self.last_direction: Tensor | None = None
        self._init_state()

    # -- state
    def _init_state(self) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        self.state[_STATE_KEY] = {
            "step": 0,
            "metric_step": -1,
            "metric_params": None,
            "metric_latents": None,
            "rng_state": gen.get_state(),
            "momentum_buffer": None,
            "prev_direction": None,
            "shrinks": 0,
            "restarts": 0,
            "rejections": 0,
        }

    @property
    def _st(self) -> dict[str, Any]:
        return self.state[_STATE_KEY]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state; the cached factorisation is rebuilt from the stored metric point."""
        super().load_state_dict(state_dict)
        st = self.state.get(_STATE_KEY)
        if not isinstance(st, dict) or "metric_step" not in st:
            raise ValueError("this state_dict was not written by NaturalGradient")
        dev, dt = self.layout.device, self.layout.dtype
        for key in ("metric_params", "momentum_buffer", "prev_direction"):
            if st[key] is not None:
                st[key] = st[key].to(device=dev, dtype=dt)
        if st["metric_latents"] is not None:
            st["metric_latents"] = st["metric_latents"].to(device=dev)
        self._factor = None

    def set_latents(self, latents: Tensor) -> None:
        """Latents ``(N, ...)`` for the next metric refresh (e.g. the trainer's batch)."""
        if not isinstance(latents, Tensor) or latents.ndim < 1 or latents.shape[0] < 1:
            raise ValueError(
                "latents must be a tensor of shape (N, ...) with N >= 1, got "
                f"{getattr(latents, 'shape', type(latents))}"
            )
        self._latents = latents.detach()

    # -- metric
    def _draw_latents(self) -> Tensor:
        st = self._st
        if self._latents is not None:
            z = self._latents
            m = self.metric_samples
            if m is not None and m < z.shape[0]:
                gen = torch.Generator()
                gen.set_state(st["rng_state"])
                idx = torch.randperm(z.shape[0], generator=gen)[:m]
                st["rng_state"] = gen.get_state()
                z = z[idx.to(z.device)]
            return z
        if self.latent_sampler is not None:
            n = self.metric_samples or DEFAULT_SAMPLER_N
            z = self.latent_sampler(n)
            if not isinstance(z, Tensor) or z.ndim < 1 or z.shape[0] != n:
                raise ValueError(
                    f"latent_sampler({n}) must return a tensor of shape ({n}, ...), got "
                    f"{getattr(z, 'shape', type(z))}"
                )
            return z.detach()
        raise RuntimeError(
            "NaturalGradient needs latents for its metric: call opt.set_latents(z) before "
            "opt.step(), or pass latent_sampler=lambda n: torch.randn(n, latent_dim)"
        )

    def _build_factor(
        self, theta: Tensor, z: Tensor, damping: float, current: bool = False
    ) -> _Factor:
        # current: theta is the generator's present parameters (saves a functional_call)
        metric = PullbackMetric(
            self.generator,
            z,
            params=None if current else theta,
            chunk_size=self.chunk_size,
            structured=self.structured,
        )
        rows = metric.n_samples * metric.d_out
        solver = self.solver
        if solver == "auto":
            solver = _auto_solver(metric.n_params, rows, damping, metric.path == "structured")
        if solver == "woodbury" and damping <= 0:
            raise ValueError("the woodbury solver needs damping > 0; set damping to e.g. 1e-3")
        f = _Factor(solver=solver, damping=damping, metric=metric)
        if solver == "cholesky":
            g = metric.dense()
            if self.eig_diagnostics:
                ev = torch.linalg.eigvalsh(g)
                f.eig_range = (float(ev[0]), float(ev[-1]))
            a = g + damping * torch.eye(g.shape[0], dtype=g.dtype, device=g.device)
            f.chol = _cholesky(
                a,
                "metric g_hat + damping*I",
                f"with damping={damping:g} the pullback metric from {metric.n_samples} latents "
                "has a null space (e.g. fewer latent outputs than parameters); use damping > 0 "
                "such as 1e-3, or more latents",
                strict=damping == 0,
            )
            piv = torch.diagonal(f.chol).square()
            f.pivot_range = (float(piv.min()), float(piv.max()))
        elif solver == "woodbury":
            if metric.path == "structured":
                small = metric.gram()  # J stays factored; products by metric.jvp / vjp
            else:
                jac = metric.jacobian()
                small = jac @ jac.T
                f.jac = jac
            small.diagonal().add_(metric.n_samples * damping)
            f.chol = _cholesky(
                small, "Woodbury matrix N*damping*I + J J^T", "increase damping", strict=False
            )
            piv = torch.diagonal(f.chol).square()
            f.pivot_range = (float(piv.min()), float(piv.max()))
        return f

    def _solve(self, f: _Factor, g: Tensor, info: dict[str, Any]) -> Tensor:
        """v = (g_hat + lambda I)^{-1} g, or with ``project`` (g_hat + lambda I)^{-1} P g,
        P = g_hat (g_hat + lambda I)^{-1} = J^T (J J^T + m lambda I)^{-1} J."""
        metric, lam = f.metric, f.damping
        if f.solver == "cholesky":
            assert f.chol is not None
            v = torch.cholesky_solve(g.unsqueeze(1), f.chol)
            if self.project:  # g_hat v = L L^T v - lambda v
                h = f.chol @ (f.chol.T @ v) - lam * v
                v = torch.cholesky_solve(h, f.chol)
            return v.squeeze(1)
        if f.solver == "woodbury":
            assert f.chol is not None
            jg = (f.jac @ g if f.jac is not None else metric.jvp(g)).unsqueeze(1)
            y = torch.cholesky_solve(jg, f.chol)
            if self.project:  # m J^T (J J^T + m lambda I)^{-2} J g: no 1/lambda term
                y = torch.cholesky_solve(y, f.chol).squeeze(1) * metric.n_samples
                return f.jac.T @ y if f.jac is not None else metric.vjp(y)
            y = y.squeeze(1)
            jty = f.jac.T @ y if f.jac is not None else metric.vjp(y)
            return (g - jty) / lam

        def op(v: Tensor) -> Tensor:
            out = metric.matvec(v)
            return out.add_(v, alpha=lam) if lam else out

        x0 = self._st["prev_direction"] if self.cg_warm_start else None
        v, res, its = _cg(op, g, x0, self.cg_iters, self.cg_tol)
        if self.project:
            v, res, its2 = _cg(op, metric.matvec(v), x0, self.cg_iters, self.cg_tol)
            its += its2
        info["cg_iters"] = its
        info["cg_residual"] = res
        return v

    # -- step
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """One natural-gradient step; returns the closure's loss (None without a closure)."""
        group = self.param_groups[0]
        lr, lam, beta = group["lr"], group["damping"], group["momentum"]
        _check_hyper(lr, lam, beta)
        if self.safeguard and closure is None:
            raise ValueError("safeguard=True needs a closure to evaluate the loss at trial points")
        loss = None
        if closure is not None:
            loss = self._eval(closure)
        params = group["params"]
        for name, p in zip(self.layout.names, params, strict=True):
            if p.grad is None:
                raise RuntimeError(
                    f"generator parameter {name!r} has no gradient; call loss.backward() "
                    "before opt.step(), or pass a closure that does"
                )
        with torch.no_grad():
            g = torch.cat([p.grad.reshape(-1) for p in params]).to(self.layout.dtype)
            if not torch.isfinite(g).all():
                raise NonFiniteError(
                    "the generator gradient is not finite (NaN or inf); the step was not taken"
                )
            st = self._st
            k = st["step"]
            info: dict[str, Any] = {"step": k, "metric_refreshed": False}
            refresh = st["metric_step"] < 0 or k - st["metric_step"] >= self.metric_every
            if refresh:
                theta = torch.cat([p.detach().reshape(-1) for p in params]).clone()
                z = self._draw_latents()
                self._factor = self._build_factor(theta, z, lam, current=True)
                st["metric_params"] = theta
                st["metric_latents"] = self._factor.metric.latents
                st["metric_step"] = k
                info["metric_refreshed"] = True
            elif self._factor is None or self._factor.damping != lam:
                self._factor = self._build_factor(st["metric_params"], st["metric_latents"], lam)
            f = self._factor
        # the torch.func products (CG, and Woodbury/projection on that path) run outside no_grad
        func_products = f.metric.path == "torch.func" and (f.solver == "cg" or self.project)
        with torch.enable_grad() if func_products else torch.no_grad():
            v = self._solve(f, g, info)
        with torch.no_grad():
            if not torch.isfinite(v).all():
                raise NonFiniteError("the natural-gradient direction is not finite")
            gv = float(g.dot(v))
            buf = st["momentum_buffer"] if beta > 0 else None
            d = -lr * v if buf is None else beta * buf - lr * v
            eta, accepted = lr, True
            if self.safeguard:
                assert closure is not None and loss is not None
                d, eta, accepted = self._safeguard(
                    closure, float(loss), g, v, gv, buf, beta, lr, info
                )
            theta_now = torch.cat([p.detach().reshape(-1) for p in params])
            if accepted:
                self._write(params, theta_now + d)
                st["momentum_buffer"] = d.clone()
            else:
                self._write(params, theta_now)
                st["momentum_buffer"] = None
                # the trials overwrote .grad: put back the gradient at the (unchanged) point
                for p, gp in zip(params, self.layout.unflatten(g).values(), strict=True):
                    p.grad.copy_(gp.to(p.grad.dtype))
            st["prev_direction"] = v.clone()
            st["step"] = k + 1
        info.update(
            solver=f.solver,
            jacobian_path=f.metric.path,
            fallback_reason=f.metric.fallback_reason,
            projected=self.project,
            metric_samples=f.metric.n_samples,
            lr_used=eta if accepted else 0.0,
            accepted=accepted,
            grad_norm=float(g.norm()),
            direction_norm=float(v.norm()),
            grad_dot_direction=gv,
            pivot_range=f.pivot_range,
            eig_range=f.eig_range,
            shrinks_total=st["shrinks"],
            restarts_total=st["restarts"],
            rejections_total=st["rejections"],
        )
        self.last_info = info
        self.last_direction = v
        return loss

    def _write(self, params: list[Tensor], theta: Tensor) -> None:
        for p, t in zip(params, self.layout.unflatten(theta).values(), strict=True):
            p.copy_(t)

    def _eval(self, closure: Callable[[], Tensor], trial: bool = False) -> Tensor:
        with torch.enable_grad():
            loss = closure()
        if not isinstance(loss, Tensor):
            raise TypeError(
                f"the closure must return the loss as a scalar tensor, got {type(loss).__name__}"
            )
        if loss.numel() != 1:
            raise ValueError(
                f"the closure must return a scalar loss tensor, got shape {tuple(loss.shape)}; "
                "reduce it, e.g. loss.mean()"
            )
        if not trial and not torch.isfinite(loss).all():
            raise NonFiniteError(f"the loss is not finite ({float(loss)}); the step was not taken")
        return loss.detach()

    def _safeguard(
        self,
        closure: Callable[[], Tensor],
        j0: float,
        g: Tensor,
        v: Tensor,
        gv: float,
        buf: Tensor | None,
        beta: float,
        lr: float,
        info: dict[str, Any],
    ) -> tuple[Tensor, float, bool]:
        st = self._st
        params = self.param_groups[0]["params"]
        theta0 = torch.cat([p.detach().reshape(-1) for p in params]).clone()
        decrease = max(gv, 0.0)
        vv = float(v.dot(v))
        eta, use_mom = lr, buf is not None
        shrinks = restarts = 0
        trials: list[float] = []
        while True:
            d = beta * buf - eta * v if (use_mom and buf is not None) else -eta * v
            self._write(params, theta0 + d)
            jt = float(self._eval(closure, trial=True))
            trials.append(jt)
            ok = math.isfinite(jt) and jt <= j0 - self.armijo_c * eta * decrease
            if not use_mom and math.isfinite(jt) and vv > 0:
                info["L_estimate"] = 2.0 * (jt - j0 + eta * gv) / (eta * eta * vv)
            if ok:
                break
            if use_mom:
                use_mom = False
                restarts += 1
                continue
            if shrinks >= self.max_shrinks:
                self._write(params, theta0)
                st["shrinks"] += shrinks
                st["restarts"] += restarts
                st["rejections"] += 1
                info.update(shrinks=shrinks, restarts=restarts, rejected=True, trial_losses=trials)
                return torch.zeros_like(v), 0.0, False
            eta *= 0.5
            shrinks += 1
        self._write(params, theta0)
        st["shrinks"] += shrinks
        st["restarts"] += restarts
        info.update(shrinks=shrinks, restarts=restarts, rejected=False, trial_losses=trials)
        return d, eta, True


def _check_hyper(lr: Any, damping: Any, momentum: Any) -> None:
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}; try 0.1")
    if not isinstance(damping, (int, float)) or not math.isfinite(damping) or damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping!r}; use a small value such as 1e-3")
    if not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}; the seed uses 0.85")


def _check_int(x: Any, name: str, lo: int) -> None:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {x!r}")


# --------------------------------------------------------------------------- concentration


@dataclass
class ConcentrationResult:
    """Monte-Carlo error of g_hat_N and of the natural-gradient vector against N.

    ``metric_error[i]``: median over repeats of ||g_hat_N - g||_op at ``sizes[i]``;
    ``vector_error[i]``: median of ||v_hat_N - v|| with v = (g + lambda I)^{-1} b and
    v_hat_N = (g_hat_N + lambda I)^{-1} b for the fixed vector ``b`` (seed 001 Cor. 9.3 with
    an exact gradient). ``*_slope``: least-squares slopes of log error against log N
    (about -1/2 by Lemma 9.2 / Cor. 9.3).
    """

    sizes: list[int]
    metric_error: list[float]
    vector_error: list[float]
    metric_slope: float
    vector_slope: float
    reference: Tensor
    gradient: Tensor
    damping: float


def metric_concentration(
    generator: nn.Module,
    latent_sampler: Callable[[int], Tensor],
    sizes: Sequence[int],
    repeats: int = 20,
    reference_samples: int = 100_000,
    seed: int = 0,
    *,
    damping: float = 1e-3,
    reference_metric: Tensor | None = None,
    gradient: Tensor | None = None,
    chunk: int = 4096,
) -> ConcentrationResult:
    """Concentration of the Monte-Carlo pullback metric (seed 001 Lemma 9.2, Cor. 9.3).

    For each N in ``sizes``, ``repeats`` independent metrics g_hat_N from ``latent_sampler(N)``
    are compared with the reference g: ``reference_metric`` if given (a closed form), else
    g_hat from ``reference_samples`` latents (accumulated in chunks of ``chunk``). Lemma 9.2
    gives ||g_hat_N - g||_op = O(N^{-1/2}) with high probability; Cor. 9.3 transfers it to
    ||v_hat_N - v|| <= (C/lambda) ||g_hat_N - g||_op. ``gradient`` is the fixed vector b (a
    seeded standard normal vector of unit norm by default). All sampling happens under
    ``torch.random.fork_rng`` with ``torch.manual_seed(seed)``, so the caller's global RNG
    is untouched and the result is reproducible when the sampler uses torch's global RNG.
    """
    layout = ParamLayout(generator)
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"sizes must hold at least two integers >= 1, got {sizes}")
    _check_int(repeats, "repeats", 1)
    _check_int(reference_samples, "reference_samples", 1)
    _check_int(chunk, "chunk", 1)
    if not isinstance(damping, (int, float)) or damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping!r}")
    n = layout.n_params
    eye = torch.eye(n, dtype=layout.dtype, device=layout.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if reference_metric is None:
            ref = torch.zeros(n, n, dtype=layout.dtype, device=layout.device)
            left = reference_samples
            while left > 0:
                m = min(chunk, left)
                jac = PullbackMetric(generator, latent_sampler(m)).jacobian()
                ref += jac.T @ jac
                left -= m
            ref /= reference_samples
        else:
            ref = reference_metric.to(dtype=layout.dtype, device=layout.device)
            if ref.shape != (n, n):
                raise ValueError(f"reference_metric must be ({n}, {n}), got {tuple(ref.shape)}")
        if gradient is None:
            b = torch.randn(n, dtype=layout.dtype, device=layout.device)
            b /= b.norm()
        else:
            b = gradient.to(dtype=layout.dtype, device=layout.device).reshape(-1)
            if b.shape[0] != n:
                raise ValueError(f"gradient must have {n} entries, got {b.shape[0]}")
        v_ref = torch.linalg.solve(ref + damping * eye, b)
        m_err, v_err = [], []
        for size in sizes:
            es, vs = [], []
            for _ in range(repeats):
                g_hat = PullbackMetric(generator, latent_sampler(size)).dense()
                es.append(float(torch.linalg.matrix_norm(g_hat - ref, ord=2)))
                v_hat = torch.linalg.solve(g_hat + damping * eye, b)
                vs.append(float((v_hat - v_ref).norm()))
            m_err.append(float(np.median(es)))
            v_err.append(float(np.median(vs)))
    logn = np.log(np.asarray(sizes, dtype=float))
    return ConcentrationResult(
        sizes=sizes,
        metric_error=m_err,
        vector_error=v_err,
        metric_slope=float(np.polyfit(logn, np.log(m_err), 1)[0]),
        vector_slope=float(np.polyfit(logn, np.log(v_err), 1)[0]),
        reference=ref,
        gradient=b,
        damping=float(damping),
    )
