"""Kronecker-factored Fisher inverses for weights shared across time steps (Martens, Ba & Johnson 2018, "K-FAC for
RNNs", §3 and App. C, with the errata below corrected).

A weight W (out × in) used at T steps, s_t = W a_t, has gradient 𝒟W = Σ_t g_t a_tᵀ. With temporal homogeneity and
a ⟂ g the Fisher is F_T = Σ_{t,s} V_{t−s}, V_d = A_d ⊗ G_d. Estimated factors (§3.5.4; zero-padded
lag-1 sums, the *same* normaliser m·E[T] at both lags, which makes the spectral bound of App. B.2 hold):

    A₀ = Σ_i Σ_t a_t a_tᵀ / (m E[T]),   A₁ = Σ_i Σ_{t<T} a_{t+1} a_tᵀ / (m E[T])   (G₀, G₁ likewise with g_t).

Three approximations of F⁻¹ acting on Z (out × in; matrix form, no vec-ordering questions; App. C.3):

* ``indep`` (eqn 6): F = E[T] V₀, F⁻¹Z = G₀⁻¹ Z A₀⁻¹ / E[T].
* ``option1`` (eqn 8; V₁ symmetric): Ψ̂_A = A₀^{−½} A₁ A₀^{−½} = U_A diag(ψ_A) U_Aᵀ (A₁ symmetrised; signed
  eigenvalues), likewise G; F⁻¹Z = L_G ((L_Gᵀ Z L_A) ⊙ Y) L_Aᵀ with L = C₀^{−½} U and Y_ij = γ(ψ_G,i ψ_A,j),
  γ(x) = 1 / Σ_k ω_k η_{T_k}(x), η_T(x) = T + 2 Σ_{d=1}^{T−1} (T − d) x^d (the polynomial form, evaluated by
  Horner's rule in float64 — the closed form is 0/0 at x = 1).
* ``option2`` (eqn 9; T → ∞ limit rescaled to T): with M = Ψ̂ᵀΨ̂ = E diag(m) Eᵀ per side,
  Z₀ = G₀^{−½} Z A₀^{−½}, Z₁ = Z₀ − Ψ̂_Gᵀ Z₀ Ψ̂_A, Z₂ = E_G ((E_Gᵀ Z₁ E_A) ⊘ (11ᵀ − m_G m_Aᵀ)) E_Aᵀ,
  Z₃ = Z₂ − Ψ̂_G Z₂ Ψ̂_Aᵀ, F⁻¹Z = G₀^{−½} Z₃ A₀^{−½} / E[T].

Errata applied (checked on dense sums): eqn 5 (§3.2.2) ends in −T V₀ (not −T I); §3.5.1's F̂_T is
V₀^{−½} F_T V₀^{−½} (not V₀^{½} F_T V₀^{½}).

Damping: factored Tikhonov on V₀ only (§4): A₀ + π√λ' I and G₀ + (√λ'/π) I with π the trace norm and
λ' = λ / E[T] (so F + λI ≈ E[T](V₀ + λ' I); TF K-FAC's normalisation, recorded as our choice); A₁, G₁ undamped.
Guards (as in TF K-FAC; by App. B.2 neither fires in exact arithmetic): the squared singular values m of Ψ̂ are
clipped to ≤ 1 and a zero denominator 1 − m_G m_A is replaced by 1; :attr:`TemporalInverse.clipped` counts them.
A factor can be *diagonal* (``diagonal=True``: the one-hot embedding input, exact; a large softmax's G,
approximated, §4.1); a layer with a diagonal factor uses ``indep``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from secondorder.distributed import spread

APPROXIMATIONS = ("indep", "option1", "option2")
#: the tensors each approximation's :meth:`TemporalInverse.apply` uses, as :meth:`TemporalInverse.compute` returns them
KEPT = {"indep": ("A_inv", "G_inv"), "option1": ("L_A", "L_G", "Y"),
        "option2": ("L1", "R1", "L2", "R2", "denominator")}


# --------------------------------------------------------------------------- the scalar functions of §2.7–§2.9
def zeta(x: Tensor, T: int) -> Tensor:
    """ζ_T(x) = Σ_{d=0}^{T} (T − d) x^d (Prop. 3), as the polynomial."""
    out = torch.zeros_like(x)
    for d in range(T, -1, -1):  # Horner: coefficients T − d for d = T … 0
        out = out * x + (T - d)
    return out


def expected_eta(x: Tensor, lengths: list[int], weights: list[float]) -> Tensor:
    """Σ_k ω_k η_{T_k}(x), η_T(x) = 2ζ_T(x) − T = T + 2 Σ_{d=1}^{T−1} (T − d) x^d, by Horner in float64."""
    x64 = x.to(torch.float64)
    total = torch.zeros_like(x64)
    for T, w in zip(lengths, weights, strict=True):
        poly = torch.zeros_like(x64)
        for d in range(T - 1, 0, -1):
            poly = (poly + 2.0 * (T - d)) * x64
        total = total + w * (poly + T)
    return total


def gamma(x: Tensor, lengths: list[int], weights: list[float]) -> Tensor:
    """γ(x) = 1 / E_T[η_T(x)] (eqn 8, §3.5.2; App. C.3), already including the 1/E[T] scaling."""
    return 1.0 / expected_eta(x, lengths, weights)


# --------------------------------------------------------------------------- statistics
def lag_moments(sequences: Tensor, mean_length: float) -> tuple[Tensor, Tensor]:
    """(C₀, C₁) from sequences (m, T, d): Σ_t x_t x_tᵀ and Σ_{t<T} x_{t+1} x_tᵀ, both over m·E[T] (§3.5.4)."""
    m, _, d = sequences.shape
    flat = sequences.reshape(-1, d)
    scale = 1.0 / (m * mean_length)
    c0 = flat.T @ flat * scale
    c1 = torch.einsum("mti,mtj->ij", sequences[:, 1:], sequences[:, :-1]) * scale
    return c0, c1


def diagonal_moment(sequences: Tensor, mean_length: float) -> Tensor:
    """diag(C₀) only (for a diagonal factor): Σ_t x_t² / (m E[T])."""
    m = sequences.shape[0]
    return sequences.pow(2).reshape(-1, sequences.shape[-1]).sum(0) / (m * mean_length)


# --------------------------------------------------------------------------- the inverse
def _sym_eigh(matrix: Tensor) -> tuple[Tensor, Tensor]:
    m = matrix.to(torch.float64)
    return torch.linalg.eigh(0.5 * (m + m.T))


def _inverse_root(matrix: Tensor, power: float) -> Tensor:
    values, vectors = _sym_eigh(matrix)
    values = values.clamp_min(torch.finfo(torch.float64).tiny)
    return (vectors * values.pow(power)) @ vectors.T


@dataclass
class Factor:
    """One side of a layer's Kronecker factors: lag-0 moment (matrix, or vector if diagonal) and lag-1 moment."""

    c0: Tensor
    c1: Tensor | None = None
    diagonal: bool = False

    def trace_mean(self) -> float:
        return float(self.c0.sum() if self.diagonal else torch.trace(self.c0)) / self.c0.shape[0]


class TemporalInverse:
    """F⁻¹ for one weight matrix from its damped factors; :meth:`refresh` then :meth:`apply` many times."""

    def __init__(self, approximation: str = "option2") -> None:
        if approximation not in APPROXIMATIONS:
            raise ValueError(f"approximation {approximation!r}: one of {', '.join(APPROXIMATIONS)}")
        self.approximation = approximation
        self.clipped = 0
        self.psi_range = (math.nan, math.nan)  # option1: min/max of ψ_G,i ψ_A,j; option2: (0, σ_max(Ψ̂))

    def refresh(self, A: Factor, G: Factor, damping: float, lengths: list[int], weights: list[float]) -> None:
        """Damp V₀ (factored Tikhonov, λ' = damping / E[T]) and pre-process as pseudo-code C.3 (float64)."""
        self.plan(A, G, damping, lengths, weights)
        self.adopt(self.compute(A, G, lengths, weights))

    def plan(self, A: Factor, G: Factor, damping: float, lengths: list[int],
             weights: list[float]) -> list[tuple[int, ...]]:
        """The refresh's cheap part — E[T], the approximation a layer can use, the damping shifts — and the shapes
        of what :meth:`compute` returns (known on every rank before any is computed)."""
        self.dtype = A.c0.dtype
        self.mean_length = float(sum(T * w for T, w in zip(lengths, weights, strict=True)))
        scaled = damping / self.mean_length
        pi = math.sqrt(A.trace_mean() / G.trace_mean()) if A.trace_mean() > 0 and G.trace_mean() > 0 else 1.0
        self.approx_used = "indep" if (A.diagonal or G.diagonal or A.c1 is None or G.c1 is None) \
            else self.approximation
        self.shifts = (pi * math.sqrt(scaled), math.sqrt(scaled) / pi)
        a, g = A.c0.shape[0], G.c0.shape[0]
        shapes = {"indep": [(a,) if A.diagonal else (a, a), (g,) if G.diagonal else (g, g)],
                  "option1": [(a, a), (g, g), (g, a)],
                  "option2": [(g, g), (a, a), (g, g), (a, a), (g, a)]}[self.approx_used]
        return [*shapes, (3,)]

    def compute(self, A: Factor, G: Factor, lengths: list[int], weights: list[float]) -> list[Tensor]:
        """The refresh's decompositions after :meth:`plan`: the tensors :meth:`apply` uses (:data:`KEPT`, float64)
        and (clipped, ψ range) as a last tensor."""
        a_shift, g_shift = self.shifts
        clipped, psi_range = 0, (math.nan, math.nan)
        if self.approx_used == "indep":
            kept = [self._damped_inverse(A, a_shift), self._damped_inverse(G, g_shift)]
            return [*kept, torch.tensor([clipped, *psi_range], dtype=torch.float64, device=A.c0.device)]
        eye_a = torch.eye(A.c0.shape[0], dtype=torch.float64, device=A.c0.device)
        eye_g = torch.eye(G.c0.shape[0], dtype=torch.float64, device=G.c0.device)
        a0 = A.c0.to(torch.float64) + a_shift * eye_a
        g0 = G.c0.to(torch.float64) + g_shift * eye_g
        a1, g1 = A.c1.to(torch.float64), G.c1.to(torch.float64)
        if self.approx_used == "option1":
            a1, g1 = 0.5 * (a1 + a1.T), 0.5 * (g1 + g1.T)
        iA, iG = _inverse_root(a0, -0.5), _inverse_root(g0, -0.5)
        psi_a, psi_g = iA @ a1 @ iA, iG @ g1 @ iG
        if self.approx_used == "option1":
            values_a, U_a = _sym_eigh(psi_a)
            values_g, U_g = _sym_eigh(psi_g)
            products = values_g[:, None] * values_a[None, :]
            psi_range = (float(products.min()), float(products.max()))
            kept = [iA @ U_a, iG @ U_g, gamma(products, lengths, weights)]
        else:
            m_a, E_a = _sym_eigh(psi_a.T @ psi_a)
            m_g, E_g = _sym_eigh(psi_g.T @ psi_g)
            clipped = int((m_a > 1).sum() + (m_g > 1).sum())
            m_a, m_g = m_a.clamp(0.0, 1.0), m_g.clamp(0.0, 1.0)
            denominator = 1.0 - m_g[:, None] * m_a[None, :]
            zero = denominator <= 0
            clipped += int(zero.sum())
            denominator = torch.where(zero, torch.ones_like(denominator), denominator)
            psi_range = (0.0, float((m_g.max() * m_a.max()).sqrt()))  # σ_max(Ψ̂) = σ_max(Ψ̂_G) σ_max(Ψ̂_A)
            # the five stages of apply folded into two sandwiches each way (8 products instead of 16):
            # E_Gᵀ Z₁ E_A = L₁ Z R₁ − L₂ Z R₂ and G₀^{−½} Z₃ A₀^{−½} = L₁ᵀ Y R₁ᵀ − L₂ᵀ Y R₂ᵀ (Y = Z₂'s core)
            kept = [E_g.T @ iG, iA @ E_a, E_g.T @ psi_g.T @ iG, iA @ psi_a @ E_a, denominator]
        return [*kept, torch.tensor([clipped, *psi_range], dtype=torch.float64, device=A.c0.device)]

    def adopt(self, computed: list[Tensor]) -> None:
        """Take :meth:`compute`'s results (this rank's own, or another's broadcast in a data-parallel run)."""
        *kept, scalars = computed
        for name, tensor in zip(KEPT[self.approx_used], kept, strict=True):
            setattr(self, name, tensor)
        clipped, low, high = scalars.tolist()
        self.clipped, self.psi_range = int(clipped), (low, high)

    @staticmethod
    def _damped_inverse(factor: Factor, shift: float) -> Tensor:
        if factor.diagonal:
            return 1.0 / (factor.c0.to(torch.float64) + shift)
        c0 = factor.c0.to(torch.float64)
        values, vectors = _sym_eigh(c0)
        return (vectors / (values.clamp_min(0.0) + shift)) @ vectors.T

    @staticmethod
    def _left(inverse: Tensor, Z: Tensor) -> Tensor:
        return inverse[:, None] * Z if inverse.ndim == 1 else inverse @ Z

    @staticmethod
    def _right(Z: Tensor, inverse: Tensor) -> Tensor:
        return Z * inverse[None, :] if inverse.ndim == 1 else Z @ inverse

    def apply(self, Z: Tensor) -> Tensor:
        """F⁻¹ Z for the gradient matrix Z (out × in)."""
        z = Z.to(torch.float64)
        if self.approx_used == "indep":
            out = self._right(self._left(self.G_inv, z), self.A_inv) / self.mean_length
        elif self.approx_used == "option1":
            out = self.L_G @ ((self.L_G.T @ z @ self.L_A) * self.Y) @ self.L_A.T
        else:
            core = (self.L1 @ z @ self.R1 - self.L2 @ z @ self.R2) / self.denominator  # E_Gᵀ Z₁ E_A ⊘ (11ᵀ − m_G m_Aᵀ)
            out = (self.L1.T @ core @ self.R1.T - self.L2.T @ core @ self.R2.T) / self.mean_length
        return out.to(Z.dtype)


def refresh_all(inverses: list[TemporalInverse], A: list[Factor], G: list[Factor], damping: float,
                lengths: list[int], weights: list[float]) -> None:
    """Every layer's inverse refreshed; in a data-parallel run each layer's decompositions by one rank, chosen by
    their cost (n³ per dense factor), and its results broadcast (:func:`~secondorder.distributed.spread`)."""
    shapes = [inverse.plan(a, g, damping, lengths, weights) for inverse, a, g in zip(inverses, A, G, strict=True)]
    costs = [sum(float(f.c0.shape[0]) ** (1 if f.diagonal else 3) for f in (a, g)) for a, g in zip(A, G, strict=True)]
    computed = spread(list(range(len(inverses))),
                      lambda mine: [inverses[i].compute(A[i], G[i], lengths, weights) for i in mine],
                      lambda i: shapes[i], costs, torch.float64, A[0].c0.device if A else "cpu")
    for inverse, results in zip(inverses, computed, strict=True):
        inverse.adopt(results)
