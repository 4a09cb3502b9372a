"""The pullback metric of a generator, estimated by Monte Carlo (seed 001 §8-§9, §12).

A generator ``G_theta : z -> x`` pushes the latent law forward, P_theta = (G_theta)_# P_Z
(seed 001 Assumption 6.4). The pullback of the Otto metric (seed 001 Def. 8.1, Def. 12.1),
g_ij(theta) = <d_i P_theta, d_j P_theta>_{P_theta}, is estimated as in seed 001 §9.1 /
Remark 12.2 by the Gauss-Newton matrix

    g_hat_N = (1/N) sum_i J_theta(z_i)^T J_theta(z_i),     J_theta(z) = dG_theta(z)/dtheta,

with ``x`` of any shape flattened to ``d_out`` numbers, so ``J_theta(z)`` is ``d_out x n``.
For a 1-D output every vector field is a gradient and g_hat_N is an unbiased estimate of the
Otto pullback metric itself; in higher dimension it over-estimates it (it ignores the
projection onto gradient fields).

:class:`PullbackMetric` gives g_hat_N densely, matrix-free (one JVP and one VJP per product),
as the stacked Jacobian and as the Gram matrix J J^T, on the structured per-sample path for
MLPs (:mod:`ottokit.gan.jacobian`) or through ``torch.func`` for any module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from ottokit import distributed as D
from ottokit._memory import MemoryEstimateError, check_memory
from ottokit.gan.jacobian import (
    LayerFactors,
    ParamLayout,
    StructuredJacobian,
    UnsupportedGenerator,
    structured_support,
)

__all__ = ["PullbackMetric"]


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
        sharded: under torch.distributed, ``latents`` are this rank's share of the metric's
            latents, and every result is that of the union of all ranks' latents (rank
            order), the same on every rank: :meth:`matvec` and :meth:`dense` all-reduce the
            per-rank products, :meth:`jvp` all-gathers and :meth:`vjp` all-reduces, and
            :meth:`gram` / :meth:`jacobian` gather the per-sample factors (the structured
            path's layer inputs and backward signals, or the rows of J), raising
            :class:`~ottokit._memory.MemoryEstimateError` that names ``solver='cg'`` on every
            rank where they would not fit. ``n_samples`` is then the union's N and
            ``n_local`` this rank's. Without a process group it changes nothing.

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
        structured: bool | Literal["auto"] = "auto",
        sharded: bool = False,
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
        self.sharded = bool(sharded) and D.is_distributed()
        self.n_local = int(self.latents.shape[0])
        self.n_samples = self.n_local
        self._offset = 0
        if self.sharded:  # rows of rank r are rows offset_r ... offset_r + N_r - 1 of the union
            counts = D.all_gather_cat(torch.tensor([self.n_local])).tolist()
            self.n_samples, self._offset = int(sum(counts)), int(sum(counts[: D.rank()]))
        self.path = "torch.func"
        self.fallback_reason: str | None = None
        self._struct: StructuredJacobian | None = None
        if structured is not False:
            reason = structured_support(generator, self.latents)
            if reason is None:
                try:
                    self._struct = StructuredJacobian.from_generator(
                        generator, self.params, self._fixed, self.latents, self.layout, own
                    )
                except UnsupportedGenerator as exc:
                    reason = str(exc)
            if self.sharded and _any_rank(reason is not None):  # every rank takes one path
                reason = reason or "the structured Jacobian does not apply on another rank"
                self._struct = None
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
            if out.numel() % self.n_local:
                raise ValueError("the generator must return one output per latent (shape (N, ...))")
            self.d_out = out.numel() // self.n_local
        self.n_params = self.layout.n_params
        self._vjp_fn: Callable[[Tensor], tuple[dict[str, Tensor]]] | None = None

    # -- the map theta -> G_theta(z), flattened
    def _call(self, p: Mapping[str, Tensor], z: Tensor) -> Tensor:
        return functional_call(self.generator, ({**self._fixed, **p},), (z,))

    def _f_batch(self, p: Mapping[str, Tensor]) -> Tensor:
        return self._call(p, self.latents).reshape(-1)

    def _f_single(self, p: Mapping[str, Tensor], z: Tensor) -> Tensor:
        return self._call(p, z.unsqueeze(0)).reshape(-1)

    def _gather_rows(self, local: Tensor) -> Tensor:
        """This rank's ``(N_r d_out, ...)`` rows -> the union's ``(N d_out, ...)``."""
        if not self.sharded:
            return local
        rows = local.reshape(self.n_local, self.d_out, *local.shape[1:])
        return D.all_gather_cat(rows).reshape(self.n_samples * self.d_out, *local.shape[1:])

    def _sum_ranks(self, local: Tensor) -> Tensor:
        return D.all_reduce(local, "sum") if self.sharded else local

    def outputs(self) -> Tensor:
        """G_theta(z_i) flattened, shape ``(N d_out,)`` (row order of :meth:`jacobian`)."""
        if self._struct is not None:
            return self._gather_rows(self._struct.outputs)
        with torch.no_grad():
            return self._gather_rows(self._f_batch(self.params))

    def _local_jacobian(self) -> Tensor:
        if self._struct is not None:
            return self._struct.jacobian()
        jac = vmap(jacrev(self._f_single), in_dims=(None, 0), chunk_size=self.chunk_size)(
            self.params, self.latents
        )
        n, d = self.n_local, self.d_out
        return torch.cat([jac[k].reshape(n, d, -1) for k in self.layout.names], dim=2).reshape(
            n * d, self.n_params
        )

    def jacobian(self) -> Tensor:
        """Stacked per-sample Jacobians, ``(N d_out, n_params)`` (``vmap(jacrev)``)."""
        if self.sharded:
            self._check_gather(2 * self.n_samples * self.d_out * self.n_params, "the Jacobian J")
        return self._gather_rows(self._local_jacobian())

    def dense(self) -> Tensor:
        """g_hat_N = J^T J / N as an ``(n_params, n_params)`` matrix."""
        j = self._local_jacobian()
        return self._sum_ranks(j.T @ j) / self.n_samples

    def gram(self) -> Tensor:
        """J J^T, ``(N d_out, N d_out)`` (the matrix of the Woodbury form)."""
        rows = self.n_samples * self.d_out
        if self._struct is None:
            if self.sharded:
                self._check_gather(rows * (rows + 2 * self.n_params), "J and J J^T")
            j = self._gather_rows(self._local_jacobian())
            return j @ j.T
        if not self.sharded:
            return self._struct.gram()
        layers = self._struct.layers
        widths = sum(lay.a.shape[1] + self.d_out * lay.delta.shape[2] for lay in layers)
        self._check_gather(2 * self.n_samples * widths + rows * rows, "the Gram matrix J J^T")
        union = [
            LayerFactors(D.all_gather_cat(lay.a), D.all_gather_cat(lay.delta), lay.weight, lay.bias)
            for lay in layers
        ]
        return StructuredJacobian(union, self.layout, self.outputs()).gram()

    def _check_gather(self, entries: int, what: str) -> None:
        """Refuse on every rank when what a rank would gather does not fit on one of them."""
        err: MemoryEstimateError | None = None
        try:
            check_memory(
                entries * self.theta.element_size(),
                what=f"{what} of {self.n_samples} latents gathered on every rank",
                knob="use solver='cg' (matrix-free: an all-reduce of per-rank products, "
                "nothing gathered)",
            )
        except MemoryEstimateError as exc:
            err = exc
        if _any_rank(err is not None):
            raise err or MemoryEstimateError(
                f"{what} of {self.n_samples} latents does not fit on another rank; use "
                "solver='cg' (matrix-free: an all-reduce of per-rank products, nothing gathered)"
            )

    def _jvp_local(self, v: Tensor) -> Tensor:
        if self._struct is not None:
            return self._struct.jvp(v)
        with torch.enable_grad():  # a function transform: independent of the caller's mode
            _, out = jvp(self._f_batch, (self.params,), (self.layout.unflatten(v),))
        return out

    def _vjp_local(self, u: Tensor) -> Tensor:
        if self._struct is not None:
            return self._struct.vjp(u)
        with torch.enable_grad():
            if self._vjp_fn is None:
                _, self._vjp_fn = vjp(self._f_batch, self.params)
            (g,) = self._vjp_fn(u)
        return self.layout.flatten(g)

    def jvp(self, v: Tensor) -> Tensor:
        """J v, shape ``(N d_out,)``: the first-order change of the outputs along ``v``."""
        return self._gather_rows(self._jvp_local(self._vec(v)))

    def vjp(self, u: Tensor) -> Tensor:
        """J^T u for ``u`` of shape ``(N d_out,)`` (or the output's shape), ``(n_params,)``."""
        u = u.to(dtype=self.layout.dtype, device=self.layout.device).reshape(-1)
        if u.shape[0] != self.n_samples * self.d_out:
            raise ValueError(
                f"u must have N*d_out={self.n_samples * self.d_out} entries, got {u.shape[0]}"
            )
        if self.sharded:
            u = u[self._offset * self.d_out : (self._offset + self.n_local) * self.d_out]
        return self._sum_ranks(self._vjp_local(u))

    def matvec(self, v: Tensor) -> Tensor:
        """g_hat_N v = J^T (J v) / N, matrix-free (one JVP and one VJP; sharded: one
        all-reduce of the per-rank products J_r^T J_r v)."""
        return self._sum_ranks(self._vjp_local(self._jvp_local(self._vec(v)))) / self.n_samples

    def _vec(self, v: Tensor) -> Tensor:
        if not isinstance(v, Tensor) or v.shape != (self.n_params,):
            raise ValueError(
                f"v must be a tensor of shape ({self.n_params},), got "
                f"{getattr(v, 'shape', type(v))}"
            )
        return v.to(dtype=self.layout.dtype, device=self.layout.device)


def _any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on some rank (one all-reduce; ``flag`` in one process)."""
    return bool(D.all_reduce(torch.tensor([float(flag)]), "max").item())
