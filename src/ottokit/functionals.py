"""Free energies on densities: the F in the gradient flow d(rho)/dt = -grad_W F.

Every functional here is *local*, ``F[rho] = sum_i F_i(rho_i)``, so it is
described by three arrays: its value, its first variation ``dF/drho_i`` (seed
000 Thm 2.13 / seed 001 §4: for GANs the adversarial potential f'(rho/q)) and
the diagonal of its Hessian ``d^2F/drho_i^2`` (what the Jacobian of a flow
needs). Functionals add: ``Entropy() + PotentialEnergy(V)`` is the Fokker-Planck
free energy with Gibbs equilibrium ``rho* ~ exp(-V)``.

On a graph ``rho`` holds node masses summing to one; on a grid of spacing h
the masses are ``rho(x_i) h^d``. Entropy, potential energy and f-divergences
change only by constants (which drop out of the flow) under that rescaling.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
from scipy.special import xlogy

from ottokit._checks import as_array, as_vector, check_real
from ottokit.fgenerators import F_DIVERGENCES, F_GENERATORS, FDivergenceName, FGenerator

__all__ = [
    "Functional",
    "Entropy",
    "PorousMedium",
    "PotentialEnergy",
    "FDivergence",
    "SumFunctional",
]

Array = np.ndarray


class Functional(ABC):
    """A local free energy ``F[rho] = sum_i F_i(rho_i)``.

    Subclasses implement the unchecked ``_value``, ``_first_variation`` and
    ``_hessian_diag``; the public methods validate ``rho`` first. Set
    ``needs_positive`` when the functional takes a logarithm or divides by rho.
    """

    needs_positive: bool = True
    size: int | None = None  # number of nodes the functional is tied to (None: any)

    @abstractmethod
    def _value(self, rho: Array) -> float: ...

    @abstractmethod
    def _first_variation(self, rho: Array) -> Array: ...

    @abstractmethod
    def _hessian_diag(self, rho: Array) -> Array: ...

    def _check(self, rho: Array) -> Array:
        if self.size is not None:
            a = as_vector(rho, self.size, "rho")
        else:
            a = as_array(rho, "rho")
            if a.ndim != 1 or a.size == 0:
                raise ValueError(
                    f"rho must be a non-empty vector (one mass per node), got shape {a.shape}"
                )
        if self.needs_positive and np.any(a <= 0):
            k = int(np.argmin(a))
            raise ValueError(
                f"{type(self).__name__} needs rho > 0 (it takes a logarithm or a negative "
                f"power); rho[{k}] = {a[k]:.3g}"
            )
        if not self.needs_positive and np.any(a < 0):
            k = int(np.argmin(a))
            raise ValueError(f"{type(self).__name__} needs rho >= 0; rho[{k}] = {a[k]:.3g}")
        return a

    def value(self, rho: Array) -> float:
        """``F[rho]``."""
        return float(self._value(self._check(rho)))

    def first_variation(self, rho: Array) -> Array:
        """``dF/drho_i`` (the L2 first variation, seed 000 Thm 2.8)."""
        return self._first_variation(self._check(rho))

    def hessian_diag(self, rho: Array) -> Array:
        """``d^2 F / d rho_i^2`` (the Hessian of a local functional is diagonal)."""
        return self._hessian_diag(self._check(rho))

    def __add__(self, other: Functional) -> SumFunctional:
        if not isinstance(other, Functional):
            return NotImplemented
        return SumFunctional((self, other))


class SumFunctional(Functional):
    """``F_1 + F_2 + ...``: values, first variations and Hessians add."""

    def __init__(self, terms: tuple[Functional, ...]):
        flat: list[Functional] = []
        for t in terms:
            flat.extend(t.terms if isinstance(t, SumFunctional) else (t,))
        sizes = {t.size for t in flat if t.size is not None}
        if len(sizes) > 1:
            raise ValueError(f"functionals in a sum are tied to different sizes {sorted(sizes)}")
        self.terms = tuple(flat)
        self.size = sizes.pop() if sizes else None
        self.needs_positive = any(t.needs_positive for t in flat)

    def _value(self, rho: Array) -> float:
        return float(sum(t._value(rho) for t in self.terms))

    def _first_variation(self, rho: Array) -> Array:
        return sum(t._first_variation(rho) for t in self.terms)  # type: ignore[return-value]

    def _hessian_diag(self, rho: Array) -> Array:
        return sum(t._hessian_diag(rho) for t in self.terms)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.terms))


class Entropy(Functional):
    """Boltzmann entropy ``H[rho] = sum_i rho_i log rho_i`` (seed 000 §2.3)."""

    needs_positive = True

    def _value(self, rho: Array) -> float:
        return float(np.sum(xlogy(rho, rho)))  # 0 log 0 = 0

    def _first_variation(self, rho: Array) -> Array:
        return np.log(rho) + 1.0

    def _hessian_diag(self, rho: Array) -> Array:
        return 1.0 / rho

    def __repr__(self) -> str:
        return "Entropy()"


class PorousMedium(Functional):
    """``sum_i rho_i^m / (m - 1)``, m > 0, m != 1; its W2 flow is the porous-medium equation."""

    def __init__(self, m: float):
        self.m = check_real(m, "m", gt=0, hint="the PorousMedium exponent m is > 0 and != 1")
        if self.m == 1:
            raise ValueError("PorousMedium exponent m must be != 1 (m = 1 is the Entropy)")
        self.needs_positive = self.m < 2  # rho^(m-2) in the Hessian

    def _value(self, rho: Array) -> float:
        return float(np.sum(rho**self.m) / (self.m - 1.0))

    def _first_variation(self, rho: Array) -> Array:
        return self.m / (self.m - 1.0) * rho ** (self.m - 1.0)

    def _hessian_diag(self, rho: Array) -> Array:
        return self.m * rho ** (self.m - 2.0)

    def __repr__(self) -> str:
        return f"PorousMedium(m={self.m:g})"


class PotentialEnergy(Functional):
    """``sum_i V_i rho_i``; with the entropy it gives the Gibbs state ``rho* ~ exp(-V)``."""

    needs_positive = False

    def __init__(self, V: Array):
        v = as_array(V, "V")
        if v.ndim != 1 or v.size == 0:
            raise ValueError(f"V must be a non-empty vector (one value per node), got {v.shape}")
        self.V = v
        self.size = self.V.shape[0]

    def _value(self, rho: Array) -> float:
        return float(np.dot(self.V, rho))

    def _first_variation(self, rho: Array) -> Array:
        return np.broadcast_to(self.V, rho.shape).copy()

    def _hessian_diag(self, rho: Array) -> Array:
        return np.zeros_like(rho)

    def __repr__(self) -> str:
        return f"PotentialEnergy(n={self.size})"


class FDivergence(Functional):
    """``D_f(rho || q) = sum_i q_i f(rho_i / q_i)`` (seed 001 §4, eq. 4.1).

    ``f`` is a name in :data:`~ottokit.fgenerators.F_GENERATORS` (``"kl"`` is
    KL(rho || q), see that table for the direction), an
    :class:`~ottokit.fgenerators.FGenerator`, or a callable ``f`` given with ``df`` and
    ``d2f``. The first variation is the adversarial potential ``f'(rho/q)``.
    """

    def __init__(
        self,
        f: FDivergenceName | FGenerator | Callable,
        q: Array,
        *,
        df: Callable[[Array], Array] | None = None,
        d2f: Callable[[Array], Array] | None = None,
    ):
        if isinstance(f, str):
            if f not in F_DIVERGENCES:
                raise ValueError(
                    f"unknown f-divergence {f!r}; allowed: {', '.join(F_DIVERGENCES)} "
                    "or a callable with df= and d2f="
                )
            gen = F_GENERATORS[f]
        elif isinstance(f, FGenerator):
            gen = f
        elif callable(f):
            if df is None or d2f is None:
                raise ValueError("a callable f needs its derivatives: pass df= and d2f=")
            gen = FGenerator(getattr(f, "__name__", "custom"), f, df, d2f)
        else:
            raise TypeError(f"f must be a name, an FGenerator or a callable, got {type(f)}")
        qa = as_array(q, "q")
        if qa.ndim != 1 or qa.size == 0:
            raise ValueError(f"q must be a non-empty vector, got shape {qa.shape}")
        if np.any(qa <= 0):
            raise ValueError(f"q must be strictly positive; min q = {qa.min():.3g}")
        self.generator = gen
        self.q = qa
        self.size = qa.shape[0]
        self.needs_positive = gen.needs_positive

    def _value(self, rho: Array) -> float:
        return float(np.dot(self.q, self.generator.f(rho / self.q)))

    def _first_variation(self, rho: Array) -> Array:
        return self.generator.df(rho / self.q)

    def _hessian_diag(self, rho: Array) -> Array:
        return self.generator.d2f(rho / self.q) / self.q

    def __repr__(self) -> str:
        return f"FDivergence({self.generator.name!r}, n={self.size})"
