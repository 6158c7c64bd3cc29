"""Damped approximate-Fisher inverses applied to per-layer blocks V_i = [∇W_i | ∇b_i] (d_i × (d_{i−1}+1)).

Factored Tikhonov damping (thesis eqn 6.7, §6.6.3; γ in place of √(λ+η), §6.6.6): block i uses
(Ā_{i−1,i−1} + π_i γ I) ⊗ (G_{i,i} + (γ/π_i) I) with the trace-norm π_i = √[(tr Ā/(d_{i−1}+1)) / (tr G/d_i)]
(§6.6.3). The cross factors of the tridiagonal variant are not damped (§6.6.3 damps only Ā_{i,i}, G_{i,i}).

* :class:`BlockDiagonalInverse` — F̌⁻¹: U_i = G̃_i⁻¹ V_i Ã_i⁻¹ (§6.4.2). Eigendecompositions of the undamped
  factors are computed at each refresh; the damping for any γ is then applied in their eigenbases, so trying
  several γ costs no new decompositions (as in Martens' code, ``useEIGs``).
* :class:`BlockTridiagonalInverse` — F̂⁻¹ = Ξᵀ Λ Ξ (§6.4.3): u = Ξv with U_i = V_i − Ψᴳ_{i,i+1} V_{i+1} Ψᴬ_{i−1,i}ᵀ,
  then Σ_{i|i+1}⁻¹ on each block through the App. B.2 eigen formula (minus sign), then Ξᵀ. Built for one γ
  at a time (each candidate γ needs its own decompositions).

Decompositions run in float64 on the factors' device. A failed eigendecomposition is retried with growing
jitter on the diagonal; negative eigenvalues of PSD factors (round-off) are clamped to 0; B.2 eigenvalues are
clamped to [0, 1 − 1e-12] so Σ_{i|i+1} stays positive definite (the code's "hack").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

Decomposition = tuple[Tensor, Tensor]  # (eigenvalues, eigenvectors)


def robust_eigh(matrix: Tensor, attempts: int = 4) -> Decomposition:
    """Symmetric eigendecomposition in float64; retries with jitter instead of failing."""
    m = matrix.to(torch.float64)
    m = 0.5 * (m + m.T)
    scale = float(torch.diagonal(m).abs().mean()) or 1.0
    for attempt in range(attempts):
        try:
            values, vectors = torch.linalg.eigh(m)
            if bool(torch.isfinite(values).all()) and bool(torch.isfinite(vectors).all()):
                return values.clamp_min(0.0), vectors
        except (RuntimeError, torch.linalg.LinAlgError):
            pass
        m = m + (10.0 ** (attempt - 10)) * scale * torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
    # Last resort: treat the factor as a multiple of the identity (never crash mid-run).
    eye = torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
    return torch.full((m.shape[0],), scale, dtype=m.dtype, device=m.device), eye


def same_size_groups(matrices: list[Tensor]) -> list[list[int]]:
    """Indices of the matrices grouped by (size, device): the sets one batched linear-algebra call can take."""
    groups: dict[tuple[int, torch.device], list[int]] = {}
    for i, m in enumerate(matrices):
        groups.setdefault((m.shape[0], m.device), []).append(i)
    return list(groups.values())


def batched_eigh(matrices: list[Tensor]) -> list[Decomposition]:
    """:func:`robust_eigh` of many symmetric matrices, the same-size ones in one batched ``eigh`` call with one
    finiteness check per size (a network's factors repeat sizes: an autoencoder's encoder and decoder mirror
    each other), instead of a call and a host synchronisation per matrix. A size group that fails falls back to
    :func:`robust_eigh` matrix by matrix, so the result is the same either way."""
    out: list[Decomposition | None] = [None] * len(matrices)
    for indices in same_size_groups(matrices):
        stack = torch.stack([matrices[i].to(torch.float64) for i in indices])
        stack = 0.5 * (stack + stack.mT)
        try:
            values, vectors = torch.linalg.eigh(stack)
            ok = bool(torch.isfinite(values).all() & torch.isfinite(vectors).all())
        except (RuntimeError, torch.linalg.LinAlgError):
            ok = False
        for j, i in enumerate(indices):
            out[i] = (values[j].clamp_min(0.0), vectors[j]) if ok else robust_eigh(matrices[i])
    return out  # type: ignore[return-value]


def trace_norm_pis(A: list[Tensor], G: list[Tensor]) -> list[float]:
    """:func:`trace_norm_pi` for every layer, with all traces moved to the host in one transfer."""
    if not A:
        return []
    means = torch.stack([torch.trace(m).to(torch.float64) / m.shape[0] for m in [*A, *G]]).tolist()
    n = len(A)
    return [math.sqrt(a / g) if a > 0 and g > 0 else 1.0 for a, g in zip(means[:n], means[n:], strict=True)]


def trace_norm_pi(A: Tensor, G: Tensor) -> float:
    """π = √[(tr Ā / dim Ā) / (tr G / dim G)] (thesis §6.6.3); 1 when either trace vanishes."""
    a, g = float(torch.trace(A)) / A.shape[0], float(torch.trace(G)) / G.shape[0]
    return math.sqrt(a / g) if a > 0 and g > 0 else 1.0


class BlockDiagonalInverse:
    """F̌⁻¹ from eigendecompositions of the undamped factors, any γ applied in their eigenbases.

    Applying through the eigenbases costs four matrix products per block (Q_Gᵀ V Q_A, scale, Q_G · Q_Aᵀ).
    Between refreshes K-FAC keeps one γ for many iterations (γ and the inverses change every 20), so from the
    second use of a γ after a refresh the damped inverses G̃⁻¹ = Q_G diag(1/(e_G + γ/π)) Q_Gᵀ and Ã⁻¹ are formed
    once and each later application costs two products, G̃⁻¹ V Ã⁻¹ (the same operator; float64 throughout).
    ``uses`` (how often each γ was applied since the refresh) decides which path runs, and is checkpointed so a
    resumed run takes the same path.
    """

    def __init__(self) -> None:
        self.A: list[Decomposition] = []
        self.G: list[Decomposition] = []
        self.pi: list[float] = []
        self.refreshes = 0
        self.uses: dict[float, int] = {}
        self._explicit: tuple[float, list[tuple[Tensor, Tensor]]] | None = None

    def refresh(self, A: list[Tensor], G: list[Tensor]) -> int:
        """Decompose the current factors; returns the number of eigendecompositions done."""
        decompositions = batched_eigh([*A, *G])
        self.A, self.G = decompositions[: len(A)], decompositions[len(A) :]
        self.pi = trace_norm_pis(A, G)
        self.refreshes += 1
        self.uses, self._explicit = {}, None
        return 2 * len(A)

    def _explicit_inverses(self, gamma: float) -> list[tuple[Tensor, Tensor]]:
        if self._explicit is None or self._explicit[0] != gamma:
            inverses = []
            for (ea, qa), (eg, qg), pi in zip(self.A, self.G, self.pi, strict=True):
                inverses.append(((qg / (eg + gamma / pi)[None, :]) @ qg.T, (qa / (ea + pi * gamma)[None, :]) @ qa.T))
            self._explicit = (gamma, inverses)
        return self._explicit[1]

    def apply(self, blocks: list[Tensor], gamma: float) -> list[Tensor]:
        """F̌⁻¹ v blockwise, damped with γ."""
        self.uses[gamma] = self.uses.get(gamma, 0) + 1
        if self.uses[gamma] >= 2:
            return [(g_inv @ V.to(torch.float64) @ a_inv).to(V.dtype)
                    for V, (g_inv, a_inv) in zip(blocks, self._explicit_inverses(gamma), strict=True)]
        out = []
        for V, (ea, qa), (eg, qg), pi in zip(blocks, self.A, self.G, self.pi, strict=True):
            v = V.to(torch.float64)
            inner = qg.T @ v @ qa
            inner = inner / ((eg + gamma / pi)[:, None] * (ea + pi * gamma)[None, :])
            out.append((qg @ inner @ qa.T).to(V.dtype))
        return out


class CholeskyBlockDiagonal:
    """F̌⁻¹ v with fresh factors, by Cholesky solves of the damped factors — for methods that re-solve every
    iteration (Botev et al. 2017, App. C.1: "two linear systems per layer"), where an eigendecomposition per
    factor would cost several times more. Same result as :class:`BlockDiagonalInverse`."""

    def __init__(self) -> None:
        self.A: list[Tensor] = []
        self.G: list[Tensor] = []
        self.pi: list[float] = []

    def refresh(self, A: list[Tensor], G: list[Tensor]) -> int:
        self.A = [a.to(torch.float64) for a in A]
        self.G = [g.to(torch.float64) for g in G]
        self.pi = trace_norm_pis(A, G)
        return 0

    @staticmethod
    def _factor(matrix: Tensor, shift: float) -> Tensor:
        eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
        for attempt in range(4):
            L, info = torch.linalg.cholesky_ex(matrix + (shift + 10.0 ** (attempt - 12) * (attempt > 0)) * eye)
            if int(info) == 0:
                return L
        values, vectors = robust_eigh(matrix + shift * eye)
        return torch.linalg.cholesky(vectors @ torch.diag(values.clamp_min(1e-12)) @ vectors.T)

    @classmethod
    def _factors(cls, matrices: list[Tensor], shifts: list[float]) -> list[Tensor]:
        """Cholesky factors of matrix + shift·I for all factors, same-size ones in one batched call with one
        host check of the failure flags; a failed one is redone by :meth:`_factor` (jitter, then eigh)."""
        out: list[Tensor | None] = [None] * len(matrices)
        for indices in same_size_groups(matrices):
            eye = torch.eye(matrices[indices[0]].shape[0], dtype=torch.float64, device=matrices[indices[0]].device)
            stack = torch.stack([matrices[i] + shifts[i] * eye for i in indices])
            L, info = torch.linalg.cholesky_ex(stack)
            failed = set((info != 0).nonzero().flatten().tolist())
            for j, i in enumerate(indices):
                out[i] = cls._factor(matrices[i], shifts[i]) if j in failed else L[j]
        return out  # type: ignore[return-value]

    def apply(self, blocks: list[Tensor], gamma: float) -> tuple[list[Tensor], int]:
        n = len(blocks)
        factors = self._factors([*self.A, *self.G], [pi * gamma for pi in self.pi] + [gamma / pi for pi in self.pi])
        out = []
        for V, La, Lg in zip(blocks, factors[:n], factors[n:], strict=True):
            left = torch.cholesky_solve(V.to(torch.float64), Lg)             # G̃⁻¹ V
            out.append(torch.cholesky_solve(left.T, La).T.to(V.dtype))       # (G̃⁻¹ V) Ã⁻¹
        return out, 2 * n


def _inverse_sqrt(decomposition: Decomposition) -> Tensor:
    values, vectors = decomposition
    return vectors @ torch.diag(values.clamp_min(1e-300).rsqrt()) @ vectors.T


def _inverse(decomposition: Decomposition) -> Tensor:
    values, vectors = decomposition
    return vectors @ torch.diag(1.0 / values.clamp_min(1e-300)) @ vectors.T


class BlockTridiagonalInverse:
    def __init__(self) -> None:
        self.gamma: float | None = None
        self.refreshes = 0

    def refresh(self, A: list[Tensor], G: list[Tensor], A_cross: list[Tensor], G_cross: list[Tensor],
                gamma: float) -> int:
        """Build Ψ, Σ⁻¹ (B.2) and the last block's inverse for damping γ; returns decompositions done."""
        n = len(A)
        eye = [torch.eye(a.shape[0], dtype=torch.float64, device=a.device) for a in A]
        eyeg = [torch.eye(g.shape[0], dtype=torch.float64, device=g.device) for g in G]
        pi = trace_norm_pis(A, G)
        Ad = [A[i].to(torch.float64) + pi[i] * gamma * eye[i] for i in range(n)]
        Gd = [G[i].to(torch.float64) + gamma / pi[i] * eyeg[i] for i in range(n)]
        decompositions = batched_eigh([*Ad, *Gd])
        dA, dG = decompositions[:n], decompositions[n:]
        count = 2 * n
        self.psi_A = [A_cross[i].to(torch.float64) @ _inverse(dA[i + 1]) for i in range(n - 1)]
        self.psi_G = [G_cross[i].to(torch.float64) @ _inverse(dG[i + 1]) for i in range(n - 1)]
        self.sigma = []
        for i in range(n - 1):
            a_half, g_half = _inverse_sqrt(dA[i]), _inverse_sqrt(dG[i])
            C = self.psi_A[i] @ Ad[i + 1] @ self.psi_A[i].T
            D = self.psi_G[i] @ Gd[i + 1] @ self.psi_G[i].T
            s1, e1 = robust_eigh(a_half @ C @ a_half)
            s2, e2 = robust_eigh(g_half @ D @ g_half)
            count += 2
            s1, s2 = s1.clamp(0.0, 1.0 - 1e-12), s2.clamp(0.0, 1.0 - 1e-12)
            self.sigma.append((a_half @ e1, g_half @ e2, 1.0 - s2[:, None] * s1[None, :]))
        self.last = (_inverse(dA[-1]), _inverse(dG[-1]))
        self.gamma = gamma
        self.refreshes += 1
        return count

    def apply(self, blocks: list[Tensor]) -> list[Tensor]:
        """F̂⁻¹ v blockwise (Ξ, then Λ, then Ξᵀ)."""
        n = len(blocks)
        V = [b.to(torch.float64) for b in blocks]
        U = [V[i] - self.psi_G[i] @ V[i + 1] @ self.psi_A[i].T for i in range(n - 1)] + [V[-1]]
        W = []
        for i in range(n - 1):
            K1, K2, denominator = self.sigma[i]
            W.append(K2 @ ((K2.T @ U[i] @ K1) / denominator) @ K1.T)
        a_inv, g_inv = self.last
        W.append(g_inv @ U[-1] @ a_inv)
        out = [W[0]] + [W[i] - self.psi_G[i - 1].T @ W[i - 1] @ self.psi_A[i - 1] for i in range(1, n)]
        return [o.to(b.dtype) for o, b in zip(out, blocks, strict=True)]
