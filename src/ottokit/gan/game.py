"""Game Jacobian of a two-player GAN and the Hessian of a scalar objective (seed 001 §6.2, §10.2).

With generator parameters theta, discriminator parameters phi and losses L_G, L_D, the
simultaneous gradient is xi = (grad_theta L_G, grad_phi L_D) and the game Jacobian is
H = d xi / d(theta, phi) (Balduzzi et al. 2018; REFERENCE.md "Seed 001"); H = S + A with S
symmetric and A antisymmetric (seed Def. 6.5 applied to the game). :class:`GameJacobian`
forms H densely for small nets, and H xi, H^T xi and A^T xi (symplectic gradient adjustment)
matrix-free with ``torch.func``; :func:`hessian` returns the Hessian of a scalar objective
with its antisymmetric part K, which is rounding (Schwarz). The block structure, the bilinear
and potential games, and why the rotational dynamics live in the game Jacobian rather than in
any scalar Hessian, are on the API reference page of :mod:`ottokit.gan` ("The game
Jacobian").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, vjp
from torch.func import hessian as _func_hessian

from ottokit._checks import as_array, check_option
from ottokit._memory import check_memory

__all__ = [
    "GameBlocks",
    "GameJacobian",
    "antisymmetric_norm",
    "decompose",
    "eigenvalues",
    "hessian",
    "hessian_plane",
]

Params = Mapping[str, Tensor] | Tensor
JacobianMode = Literal["reverse", "forward"]
Spec = tuple[tuple[str, torch.Size], ...] | None


def _flatten(params: Any, name: str) -> tuple[Tensor, Spec]:
    """``params`` (a tensor or a name -> tensor mapping) as one flat vector plus its layout."""
    if isinstance(params, Tensor):
        if not params.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {params.dtype}")
        return params.detach().reshape(-1).clone(), None
    if isinstance(params, Mapping):
        if len(params) == 0:
            raise ValueError(f"{name} is empty; pass at least one parameter tensor")
        parts, spec = [], []
        for key, val in params.items():
            if not isinstance(val, Tensor) or not val.is_floating_point():
                raise TypeError(f"{name}[{key!r}] must be a floating-point tensor, got {type(val)}")
            parts.append(val.detach().reshape(-1))
            spec.append((str(key), val.shape))
        dtypes = {p.dtype for p in parts}
        if len(dtypes) > 1:
            raise TypeError(f"{name} mixes dtypes {sorted(map(str, dtypes))}; cast them to one")
        return torch.cat(parts).clone(), tuple(spec)
    raise TypeError(f"{name} must be a Tensor or a mapping name -> Tensor, got {type(params)}")


def _unflatten(flat: Tensor, spec: Spec) -> Any:
    if spec is None:
        return flat
    out, k = {}, 0
    for key, shape in spec:
        size = shape.numel()
        out[key] = flat[k : k + size].reshape(shape)
        k += size
    return out


def _as_square(H: Any, name: str = "H") -> Tensor:
    if not isinstance(H, Tensor):
        H = torch.as_tensor(as_array(H, name, finite=False))
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(H.shape)}")
    if not torch.isfinite(H).all():
        raise ValueError(f"{name} contains non-finite entries")
    return H


def _as_direction(v: Any, n: int, like: Tensor, name: str) -> Tensor:
    if not isinstance(v, Tensor):
        v = as_array(v, name, finite=False)
    t = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must be a vector of length {n}, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    return t


def _check_dense(n: int, like: Tensor, what: str) -> None:
    """Refuse an n x n dense derivative that cannot fit (the matrix and two working copies)."""
    check_memory(
        3 * n * n * like.element_size(),
        what=f"the dense {what} of {n} parameters",
        knob="use the matrix-free products (hvp, htvp, hessian_plane) for large models",
    )


def _plane_basis(e_i: Tensor, e_j: Tensor) -> Tensor:
    """Columns [e_i, e_j]; they must be non-zero and not parallel (the plane must be 2-D)."""
    P = torch.stack([e_i, e_j], dim=1)
    s = torch.linalg.svdvals(P)
    if s[-1] <= 1e-8 * max(float(s[0]), 1e-300):
        raise ValueError(
            "e_i and e_j must span a plane (non-zero, not parallel); "
            "use two orthonormal vectors, e.g. coordinate directions"
        )
    return P


def decompose(H: Any) -> tuple[Tensor, Tensor]:
    """Symmetric/antisymmetric split H = S + A, S = (H + H^T)/2, A = (H - H^T)/2 (seed Def. 6.5)."""
    H = _as_square(H)
    return 0.5 * (H + H.T), 0.5 * (H - H.T)


def eigenvalues(H: Any) -> Tensor:
    """Complex eigenvalues of a (generally non-symmetric) square matrix (``linalg.eigvals``)."""
    return torch.linalg.eigvals(_as_square(H))


def antisymmetric_norm(H: Any) -> float:
    """Relative size ||A||_F / ||H||_F of the antisymmetric part (0 for a symmetric H, 1 for an
    antisymmetric one); 0 for H = 0."""
    H = _as_square(H)
    total = torch.linalg.matrix_norm(H)
    if float(total) == 0.0:
        return 0.0
    return float(torch.linalg.matrix_norm(0.5 * (H - H.T)) / total)


@dataclass(frozen=True)
class GameBlocks:
    """The four blocks of the game Jacobian: H = [[tt, tp], [pt, pp]].

    ``tt`` = d2 L_G/d theta2 (n_G x n_G), ``tp`` = d2 L_G/d theta d phi (n_G x n_D),
    ``pt`` = d2 L_D/d phi d theta (n_D x n_G), ``pp`` = d2 L_D/d phi2 (n_D x n_D).
    """

    tt: Tensor
    tp: Tensor
    pt: Tensor
    pp: Tensor


LossFn = Callable[[Any, Any], tuple[Tensor, Tensor]]


class GameJacobian:
    """Simultaneous gradient xi and game Jacobian H = d xi / d(theta, phi) of a two-player game.

    ``full()`` builds the dense (n_G + n_D)^2 matrix and is meant for small nets; ``hvp``/``htvp``
    and ``antisymmetric_xi`` are matrix-free (one forward-over-reverse or reverse-over-reverse
    product each). Forward-mode rules of a few torch ops are wrong at second order in current
    torch (e.g. ``linalg.solve``/``slogdet``: pytorch/pytorch#192540; umbrella #198017); the tests
    check ``full(mode="forward")`` against ``jacrev`` and central differences for tanh/linear nets,
    and the same comparison is the check to run for other layers.

    Args:
        g_params: Generator parameters: a floating-point tensor or a mapping name -> tensor
            (e.g. ``dict(module.named_parameters())``). They are copied (detached); all
            computations happen at this point.
        d_params: Discriminator parameters, of the same kinds.
        losses: ``losses(g_params, d_params) -> (L_G, L_D)``, two scalar tensors, called with
            parameter structures of the same kind as given (tensors or dicts). It must be
            written with differentiable torch operations (it is traced by ``torch.func``). Use
            :meth:`from_modules` to bind ``nn.Module`` networks through ``functional_call``.
    """

    def __init__(self, g_params: Params, d_params: Params, losses: LossFn) -> None:
        if not callable(losses):
            raise TypeError(
                f"losses must be callable (g_params, d_params) -> (L_G, L_D), got {losses!r}"
            )
        theta, self._g_spec = _flatten(g_params, "g_params")
        phi, self._d_spec = _flatten(d_params, "d_params")
        if theta.dtype != phi.dtype:
            raise TypeError(
                f"g_params ({theta.dtype}) and d_params ({phi.dtype}) must share a dtype; cast one"
            )
        self._losses = losses
        self.n_g = int(theta.numel())
        self.n_d = int(phi.numel())
        self.w = torch.cat([theta, phi])
        try:
            L_G, L_D = self._call_losses(theta, phi)
        except (TypeError, ValueError):
            raise ValueError(
                "losses must return two scalar tensors (L_G, L_D); return them as a tuple"
            ) from None
        for name, val in (("L_G", L_G), ("L_D", L_D)):
            if not isinstance(val, Tensor) or val.numel() != 1:
                raise ValueError(f"losses must return two scalar tensors; {name} is {val!r}")

    @classmethod
    def from_modules(
        cls,
        G: nn.Module,
        D: nn.Module,
        losses_fn: Callable[[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]], Any],
    ) -> GameJacobian:
        """Build from two modules; ``losses_fn(G_fn, D_fn) -> (L_G, L_D)``.

        ``G_fn(z)`` and ``D_fn(x)`` evaluate the networks with the parameters being differentiated
        (``torch.func.functional_call``), so the losses are written as ordinary module code, e.g.
        ``L_D = softplus(-D_fn(x_real)).mean() + softplus(D_fn(G_fn(z))).mean()``.
        """
        if not isinstance(G, nn.Module) or not isinstance(D, nn.Module):
            raise TypeError("G and D must be torch.nn.Module instances")
        if not callable(losses_fn):
            raise TypeError("losses_fn must be callable (G_fn, D_fn) -> (L_G, L_D)")

        def losses(gp: Mapping[str, Tensor], dp: Mapping[str, Tensor]) -> Any:
            return losses_fn(
                lambda z: functional_call(G, dict(gp), (z,)),
                lambda x: functional_call(D, dict(dp), (x,)),
            )

        g_params = {k: v.detach() for k, v in G.named_parameters()}
        d_params = {k: v.detach() for k, v in D.named_parameters()}
        return cls(g_params, d_params, losses)

    def _call_losses(self, theta: Tensor, phi: Tensor) -> Any:
        return self._losses(_unflatten(theta, self._g_spec), _unflatten(phi, self._d_spec))

    def xi_at(self, w: Tensor) -> Tensor:
        """Simultaneous gradient xi(w) at a flat point w = (theta, phi) (a pure function of w)."""
        theta, phi = w[: self.n_g], w[self.n_g :]
        g_theta = grad(lambda t: self._call_losses(t, phi)[0].reshape(()))(theta)
        g_phi = grad(lambda p: self._call_losses(theta, p)[1].reshape(()))(phi)
        return torch.cat([g_theta, g_phi])

    def xi(self) -> Tensor:
        """xi = (grad_theta L_G, grad_phi L_D) at the stored point."""
        return self.xi_at(self.w)

    def full(self, mode: JacobianMode = "reverse") -> Tensor:
        """Dense game Jacobian H = d xi / dw ((n_G + n_D) square), by ``jacrev`` or ``jacfwd``."""
        check_option(mode, JacobianMode, "mode")
        _check_dense(self.w.numel(), self.w, "game Jacobian")
        jac = jacrev if mode == "reverse" else jacfwd
        return jac(self.xi_at)(self.w)

    def hvp(self, v: Any) -> Tensor:
        """H v, forward-over-reverse (``torch.func.jvp`` of xi); no matrix is formed."""
        v = _as_direction(v, self.w.numel(), self.w, "v")
        return jvp(self.xi_at, (self.w,), (v,))[1]

    def htvp(self, v: Any) -> Tensor:
        """H^T v, reverse-over-reverse (``torch.func.vjp`` of xi); no matrix is formed."""
        v = _as_direction(v, self.w.numel(), self.w, "v")
        _, pullback = vjp(self.xi_at, self.w)
        return pullback(v)[0]

    def blocks(self, H: Tensor | None = None) -> GameBlocks:
        """The four blocks (theta-theta, theta-phi, phi-theta, phi-phi) of H (computed if None)."""
        H = self.full() if H is None else _as_square(H)
        n = self.n_g + self.n_d
        if H.shape[0] != n:
            raise ValueError(f"H must be {n} x {n} for this game, got {tuple(H.shape)}")
        g = self.n_g
        return GameBlocks(tt=H[:g, :g], tp=H[:g, g:], pt=H[g:, :g], pp=H[g:, g:])

    def antisymmetric_xi(self) -> Tensor:
        """A^T xi = (H^T xi - H xi)/2, matrix-free (the SGA adjustment direction)."""
        x = self.xi().detach()
        return 0.5 * (self.htvp(x) - self.hvp(x))

    def antisymmetric_xi_norm(self) -> float:
        """||A^T xi|| = ||(H^T xi - H xi)/2|| (Euclidean), matrix-free."""
        return float(torch.linalg.vector_norm(self.antisymmetric_xi()))

    def plane(self, e_i: Any, e_j: Any) -> tuple[Tensor, Tensor]:
        """Restriction of H to span{e_i, e_j}: (P^T H P, its antisymmetric part), P = [e_i e_j].

        Uses two H-vector products only, so it works for any parameter count. With orthonormal
        e_i, e_j this is the 2x2 block of H in that basis; its antisymmetric part is
        [[0, a], [-a, 0]] with a = (e_i^T H e_j - e_j^T H e_i)/2.
        """
        n = self.w.numel()
        P = _plane_basis(_as_direction(e_i, n, self.w, "e_i"), _as_direction(e_j, n, self.w, "e_j"))
        HP = torch.stack([self.hvp(P[:, 0]), self.hvp(P[:, 1])], dim=1)
        H2 = P.T @ HP
        return H2, 0.5 * (H2 - H2.T)


def _scalar_fn(J: Callable[[Any], Tensor], spec: Spec) -> Callable[[Tensor], Tensor]:
    if not callable(J):
        raise TypeError(f"J must be callable params -> scalar tensor, got {J!r}")

    def f(flat: Tensor) -> Tensor:
        out = J(_unflatten(flat, spec))
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise ValueError(f"J must return a scalar tensor, got {out!r}")
        return out.reshape(())

    return f


def hessian(J: Callable[[Any], Tensor], params: Params) -> tuple[Tensor, Tensor]:
    """Hessian of a scalar objective and its antisymmetric part (seed §10.2, Def. 6.5).

    ``J(params)`` returns a scalar; ``params`` is a tensor or a mapping name -> tensor (flattened
    in its iteration order). Returns ``(Hess, K)`` with Hess = ``torch.func.hessian`` (forward over
    reverse) of the flattened objective and K = (Hess - Hess^T)/2.

    For any C^2 scalar J the mixed partials commute (Schwarz's theorem), so the exact Hessian is
    symmetric and K = 0: the computed K is rounding only, of the order of the float64 machine
    epsilon times ||Hess||_F.
    A non-zero antisymmetric part needs two *different* functions differentiated in crossed
    directions, which is the game Jacobian of :class:`GameJacobian` (REFERENCE.md "Seed 001").
    """
    flat, spec = _flatten(params, "params")
    _check_dense(flat.numel(), flat, "Hessian")
    Hm = _func_hessian(_scalar_fn(J, spec))(flat)
    return Hm, 0.5 * (Hm - Hm.T)


def hessian_plane(
    J: Callable[[Any], Tensor], params: Params, e_i: Any, e_j: Any
) -> tuple[Tensor, Tensor]:
    """2x2 restriction P^T (grad^2 J) P, P = [e_i e_j], and its antisymmetric part (seed §10.2).

    Matrix-free: two Hessian-vector products (``jvp`` of ``grad``), for parameter counts where the
    dense Hessian is too large. The antisymmetric part is zero up to rounding (Schwarz).
    """
    flat, spec = _flatten(params, "params")
    n = flat.numel()
    P = _plane_basis(_as_direction(e_i, n, flat, "e_i"), _as_direction(e_j, n, flat, "e_j"))
    g = grad(_scalar_fn(J, spec))
    HP = torch.stack([jvp(g, (flat,), (P[:, k],))[1] for k in range(2)], dim=1)
    H2 = P.T @ HP
    return H2, 0.5 * (H2 - H2.T)
