"""Parameter layout and the structured per-sample Jacobian of an MLP generator.

The pullback metric (seed 001 Def. 8.1, Remark 12.2) needs the per-sample Jacobians
J_theta(z_i) = dG_theta(z_i)/dtheta of the flattened output with respect to the trainable
parameters. :class:`ParamLayout` fixes the order of theta: ``generator.parameters()``
restricted to ``requires_grad``, each tensor row-major, exactly as
``torch.nn.utils.parameters_to_vector``.

For an MLP (``nn.Linear`` layers and elementwise activations, :func:`structured_support`)
the Jacobian rows of layer s = W a + b are ``delta_i^k (x) [a_i, 1]``, with a_i the layer's
input and delta_i^k = dx_{i,k}/ds_i its backward signal (Goodfellow 2015; BackPACK, Opacus).
:class:`StructuredJacobian` keeps these factors and gives J J^T, J v and J^T u without forming
J. Any other module raises :class:`UnsupportedGenerator` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = [
    "ELEMENTWISE_ACTIVATIONS",
    "LayerFactors",
    "ParamLayout",
    "StructuredJacobian",
    "UnsupportedGenerator",
    "structured_support",
]


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


# parameter-free elementwise activations the structured path accepts (exact types only: a
# subclass may override forward)
ELEMENTWISE_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.Tanh, nn.Sigmoid, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU,
    nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.LogSigmoid,
)  # fmt: skip


class UnsupportedGenerator(Exception):
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


@dataclass(frozen=True)
class LayerFactors:
    """The per-sample factors of one ``nn.Linear`` layer s = W a + b over N samples."""

    a: Tensor  # (N, in): the layer's inputs
    delta: Tensor  # (N, d_out, out): delta[i, k] = d x_{i,k} / d s_i
    weight: str | None  # name of the trainable weight, or None
    bias: str | None  # name of the trainable bias, or None


class StructuredJacobian:
    """Per-sample Jacobian of an MLP in factored form (Goodfellow 2015; BackPACK, Opacus).

    For a layer s = W a + b the Jacobian rows of output coordinate k at sample i are
    ``d x_{i,k}/dW = delta_i^k (x) a_i`` and ``d x_{i,k}/db = delta_i^k``, so J is never
    formed for the products. Build it with :meth:`from_generator`; the constructor takes
    factors already computed (e.g. those of several batches concatenated sample-wise).

    Args:
        layers: one :class:`LayerFactors` per ``nn.Linear`` with a trainable parameter.
        layout: the parameter layout the products are flattened in.
        outputs: the generated points G_theta(z_i), flattened ``(N d_out,)``.
    """

    def __init__(
        self, layers: Sequence[LayerFactors], layout: ParamLayout, outputs: Tensor
    ) -> None:
        self.layers: list[LayerFactors] = list(layers)
        self.layout = layout
        self.n, self.d = int(self.layers[0].delta.shape[0]), int(self.layers[0].delta.shape[1])
        self.outputs = outputs

    @classmethod
    def from_generator(
        cls,
        generator: nn.Module,
        params: Mapping[str, Tensor],
        fixed: Mapping[str, Tensor],
        latents: Tensor,
        layout: ParamLayout,
        own_params: bool = False,
    ) -> StructuredJacobian:
        """Capture the factors of ``generator`` at ``params`` on ``latents``.

        The inputs a_i come from forward hooks, the backward signals delta_i^k from d_out
        backward passes of ``sum_i x_{i,k}`` (samples are independent). ``fixed`` holds the
        buffers and frozen parameters; ``own_params`` runs the module with its own parameters
        (``params`` are then its current values), which saves a ``functional_call``.

        Raises:
            UnsupportedGenerator: the forward pass is not a plain MLP on these latents.
        """
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
                    raise UnsupportedGenerator("the output is not (N, ...)")
                out2 = out.reshape(n, -1)
        finally:
            for h in handles:
                h.remove()
        if any(c != 1 for c in calls):
            raise UnsupportedGenerator(
                f"an nn.Linear ran {max(calls)} times in one forward pass (shared weights)"
            )
        d = int(out2.shape[1])
        names = set(layout.names)
        found: list[tuple[str | None, str | None, int]] = []
        for j, (name, m) in enumerate(linears):
            pre = f"{name}." if name else ""
            w = pre + "weight" if pre + "weight" in names else None
            b = pre + "bias" if m.bias is not None and pre + "bias" in names else None
            if w or b:
                found.append((w, b, j))
        covered = {x for w, b, _ in found for x in (w, b) if x}
        if covered != names:
            raise UnsupportedGenerator(
                f"parameters {sorted(names - covered)} are not nn.Linear ones"
            )
        s_list = [records[j][1] for _, _, j in found]  # type: ignore[index]
        per_k: list[tuple[Tensor | None, ...]] = []
        with torch.enable_grad():
            for k in range(d):
                per_k.append(
                    torch.autograd.grad(
                        out2[:, k].sum(), s_list, retain_graph=k < d - 1, allow_unused=True
                    )
                )
        if any(g is None for gs in per_k for g in gs):
            raise UnsupportedGenerator("an nn.Linear layer does not reach the output")
        layers = [
            LayerFactors(
                a=records[j][0],  # type: ignore[index]
                delta=torch.stack([gs[idx] for gs in per_k], 1).detach(),  # type: ignore[misc]
                weight=w,
                bias=b,
            )
            for idx, (w, b, j) in enumerate(found)
        ]
        return cls(layers, layout, out2.detach().reshape(-1))

    def gram(self) -> Tensor:
        """J J^T[(i,k),(j,m)] = sum_l (<a_i, a_j> + 1) <delta_i^{l,k}, delta_j^{l,m}>."""
        n, d = self.n, self.d
        k_mat: Tensor | None = None
        for lay in self.layers:
            c = lay.a @ lay.a.T if lay.weight else None
            if lay.bias:
                c = c + 1.0 if c is not None else lay.a.new_ones(n, n)
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
