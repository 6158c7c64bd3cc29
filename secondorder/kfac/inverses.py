"""Damped approximate-Fisher inverses for K-FAC, one shape for every back-end.

Each back-end acts on per-layer blocks V_i = [∇W_i | ∇b_i] (d_i × (d_{i−1}+1)) and offers the same four calls
(in the manner of kfac-jax's curvature blocks: the optimiser picks a back-end once and never asks which one
it has):

* ``refresh(factors)`` — take the current Kronecker factors (a mapping with ``"A"`` and ``"G"``, and for the
  tridiagonal back-end ``"A_cross"`` and ``"G_cross"``: :meth:`~secondorder.kfac.factors.KroneckerFactors.
  matrices` or a statistics pass's estimates) and do the damping-independent work;
* ``apply(blocks, damping) -> blocks`` — the damped inverse times the blocks;
* ``state_dict()`` / ``load_state_dict(state, device)`` — tensors and plain values only (checkpoints load with
  ``torch.load(weights_only=True)``);
* ``to_dense(damping)`` — the damped inverse as a dense matrix acting on the row-major vectorisation
  vec(V) = [V_1.flatten(), …, V_ℓ.flatten()], for tests. With row-major vec, vec(G V A) = (G ⊗ A) vec(V) for
  symmetric A, so a block's Fisher is G_{i,i} ⊗ Ā_{i−1,i−1} (the order of the factors in this module).

``inversions`` counts the decompositions and Cholesky factorisations a back-end has done (the optimiser's
``StepCosts.inversions`` is the increase over a step).

Factored Tikhonov damping (Martens & Grosse 2015, §6.3; thesis eqn 6.7, with γ in place of √(λ+η) as in thesis
§6.6.6): block i uses (Ā_{i−1,i−1} + π_i γ I) ⊗ (G_{i,i} + (γ/π_i) I) with the trace-norm
π_i = √[(tr Ā/(d_{i−1}+1)) / (tr G/d_i)]. The cross factors of the tridiagonal variant are not damped (thesis
§6.6.6: "replacing each Ā_{i−1,i−1} and G_{i,i} with their modified versions"; Martens' code does the same).

* :class:`BlockDiagonalInverse` — F̌⁻¹: U_i = G̃_i⁻¹ V_i Ã_i⁻¹ (Martens & Grosse 2015, §4.2). Eigendecompositions of
  the undamped factors at each refresh; the damping for any γ is then applied in their eigenbases, so trying
  several γ costs no new decompositions (as in Martens' code, ``useEIGs``).
* :class:`CholeskyBlockDiagonal` — the same F̌⁻¹ by Cholesky solves of the damped factors, for factors that are
  fresh at every iteration (KFRA/KFLR).
* :class:`BlockTridiagonalInverse` — F̂⁻¹ = Ξᵀ Λ Ξ (Martens & Grosse 2015, §4.3; thesis §6.4.3): u = Ξv with
  U_i = V_i − Ψᴳ_{i,i+1} V_{i+1} Ψᴬ_{i−1,i}ᵀ, then Σ_{i|i+1}⁻¹ on each block through the (A⊗B − C⊗D)⁻¹ eigen
  formula (thesis App. B.2), then Ξᵀ. The damping enters every decomposition, so they are built lazily, once per
  damping value after each refresh, and kept until the next refresh.

Decompositions run in float64 on the factors' device. A failed eigendecomposition is retried with growing
jitter on the diagonal; negative eigenvalues of PSD factors (round-off) are clamped to 0; the App. B.2
eigenvalues are clamped to [0, 1 − 1e-12] so Σ_{i|i+1} stays positive definite (as Martens' code does).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from secondorder.distributed import spread

Decomposition = tuple[Tensor, Tensor]  # (eigenvalues, eigenvectors)
Factors = Mapping[str, Sequence[Tensor]]  # "A", "G" (and "A_cross", "G_cross"): one list of matrices per key

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


def spread_eigh(matrices: list[Tensor]) -> list[Decomposition]:
    """:func:`batched_eigh` with the matrices shared out over the ranks of a data-parallel run by their cost n³
    and the decompositions broadcast (:func:`~secondorder.distributed.spread`); every rank ends with all of them."""
    device = matrices[0].device if matrices else torch.device("cpu")
    shared = spread(matrices, lambda mine: [list(d) for d in batched_eigh(mine)],
                    lambda m: [(m.shape[0],), (m.shape[0], m.shape[0])],
                    [float(m.shape[0]) ** 3 for m in matrices], torch.float64, device)
    return [(values, vectors) for values, vectors in shared]


def trace_norm_pis(A: list[Tensor], G: list[Tensor]) -> list[float]:
    """:func:`trace_norm_pi` for every layer, with all traces moved to the host in one transfer."""
    if not A:
        return []
    means = torch.stack([torch.trace(m).to(torch.float64) / m.shape[0] for m in [*A, *G]]).tolist()
    n = len(A)
    return [math.sqrt(a / g) if a > 0 and g > 0 else 1.0 for a, g in zip(means[:n], means[n:], strict=True)]


def trace_norm_pi(A: Tensor, G: Tensor) -> float:
    """π = √[(tr Ā / dim Ā) / (tr G / dim G)] (Martens & Grosse 2015, §6.3); 1 when either trace vanishes."""
    a, g = float(torch.trace(A)) / A.shape[0], float(torch.trace(G)) / G.shape[0]
    return math.sqrt(a / g) if a > 0 and g > 0 else 1.0


def robust_cholesky(matrix: Tensor, shift: float) -> Tensor:
    """Lower Cholesky factor of matrix + shift·I (float64 input); retried with growing jitter, and as a last
    resort taken from the eigendecomposition with eigenvalues clamped to 1e-12 (never crash mid-run)."""
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    for attempt in range(4):
        L, info = torch.linalg.cholesky_ex(matrix + (shift + 10.0 ** (attempt - 12) * (attempt > 0)) * eye)
        if int(info) == 0:
            return L
    values, vectors = robust_eigh(matrix + shift * eye)
    return torch.linalg.cholesky(vectors @ torch.diag(values.clamp_min(1e-12)) @ vectors.T)


def batched_cholesky(matrices: list[Tensor], shifts: list[float]) -> list[Tensor]:
    """:func:`robust_cholesky` of every matrix + shift·I (float64 inputs): the same-size ones in one batched
    ``cholesky_ex`` call with one host check of the failure flags; a failed one is redone by
    :func:`robust_cholesky` (jitter, then eigh), so the result is the same either way."""
    out: list[Tensor | None] = [None] * len(matrices)
    for indices in same_size_groups(matrices):
        eye = torch.eye(matrices[indices[0]].shape[0], dtype=torch.float64, device=matrices[indices[0]].device)
        stack = torch.stack([matrices[i] + shifts[i] * eye for i in indices])
        L, info = torch.linalg.cholesky_ex(stack)
        failed = set((info != 0).nonzero().flatten().tolist())
        for j, i in enumerate(indices):
            out[i] = robust_cholesky(matrices[i], shifts[i]) if j in failed else L[j]
    return out  # type: ignore[return-value]


def _to(tensors: Sequence[Tensor], device: torch.device | str) -> list[Tensor]:
    return [t.to(device) for t in tensors]


def _block_diagonal(blocks: list[Tensor]) -> Tensor:
    return torch.block_diag(*blocks) if blocks else torch.zeros(0, 0, dtype=torch.float64)


class KroneckerInverse(ABC):
    """The one shape of a damped K-FAC inverse (see the module docstring): refresh, apply, state, dense form.

    ``inversions`` is the running count of decompositions and factorisations done (checkpointed with the state).
    """

    def __init__(self) -> None:
        self.inversions = 0

    @abstractmethod
    def refresh(self, factors: Factors) -> None:
        """Take the current factors and do the damping-independent work (decompositions, where there are)."""

    @abstractmethod
    def apply(self, blocks: list[Tensor], damping: float) -> list[Tensor]:
        """The damped inverse applied to the per-layer blocks (same shapes and dtypes back)."""

    @abstractmethod
    def to_dense(self, damping: float) -> Tensor:
        """The damped inverse as a dense float64 matrix on the row-major vec of the blocks (for tests)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None: ...


class BlockDiagonalInverse(KroneckerInverse):
    """F̌⁻¹ from eigendecompositions of the undamped factors, any γ applied in their eigenbases.

    Applying through the eigenbases costs four matrix products per block (Q_Gᵀ V Q_A, scale, Q_G · Q_Aᵀ).
    Between refreshes K-FAC keeps one γ for many iterations (γ and the inverses change every 20), so from the
    second use of a γ after a refresh the damped inverses G̃⁻¹ = Q_G diag(1/(e_G + γ/π)) Q_Gᵀ and Ã⁻¹ are formed
    once and each later application costs two products, G̃⁻¹ V Ã⁻¹ (the same operator; float64 throughout).
    ``uses`` (how often each γ was applied since the refresh) decides which path runs, and is checkpointed so a
    resumed run takes the same path. A refresh costs 2ℓ eigendecompositions; applying costs none.

    ``spread`` (data-parallel runs): the 2ℓ decompositions are shared out over the ranks by their cost n³ and
    broadcast (:func:`~secondorder.distributed.spread`); every rank ends with all of them, as one process would.
    """

    def __init__(self, spread: bool = False) -> None:
        super().__init__()
        self.spread = spread
        self.A: list[Decomposition] = []
        self.G: list[Decomposition] = []
        self.pi: list[float] = []
        self.refreshes = 0
        self.uses: dict[float, int] = {}
        self._explicit: tuple[float, list[tuple[Tensor, Tensor]]] | None = None

    def refresh(self, factors: Factors) -> None:
        A, G = list(factors["A"]), list(factors["G"])
        decompositions = spread_eigh([*A, *G]) if self.spread else batched_eigh([*A, *G])
        self.A, self.G = decompositions[: len(A)], decompositions[len(A) :]
        self.pi = trace_norm_pis(A, G)
        self.refreshes += 1
        self.uses, self._explicit = {}, None
        self.inversions += 2 * len(A)

    def _damped_inverses(self, gamma: float) -> list[tuple[Tensor, Tensor]]:
        """(G̃⁻¹, Ã⁻¹) per layer from the eigendecompositions."""
        return [((qg / (eg + gamma / pi)[None, :]) @ qg.T, (qa / (ea + pi * gamma)[None, :]) @ qa.T)
                for (ea, qa), (eg, qg), pi in zip(self.A, self.G, self.pi, strict=True)]

    @property
    def explicit_gamma(self) -> float | None:
        """The γ whose damped inverses G̃⁻¹, Ã⁻¹ are formed explicitly (its second use since the refresh), if any."""
        return None if self._explicit is None else self._explicit[0]

    def _explicit_inverses(self, gamma: float) -> list[tuple[Tensor, Tensor]]:
        if self._explicit is None or self._explicit[0] != gamma:
            self._explicit = (gamma, self._damped_inverses(gamma))
        return self._explicit[1]

    def apply(self, blocks: list[Tensor], damping: float) -> list[Tensor]:
        """F̌⁻¹ v blockwise, damped with γ = ``damping``."""
        gamma = damping
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

    def to_dense(self, damping: float) -> Tensor:
        return _block_diagonal([torch.kron(g_inv, a_inv) for g_inv, a_inv in self._damped_inverses(damping)])

    def state_dict(self) -> dict[str, Any]:
        return {"A_values": [e for e, _ in self.A], "A_vectors": [q for _, q in self.A],
                "G_values": [e for e, _ in self.G], "G_vectors": [q for _, q in self.G],
                "pi": list(self.pi), "uses": dict(self.uses), "refreshes": self.refreshes,
                "inversions": self.inversions}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.A = list(zip(_to(state["A_values"], device), _to(state["A_vectors"], device), strict=True))
        self.G = list(zip(_to(state["G_values"], device), _to(state["G_vectors"], device), strict=True))
        self.pi = [float(p) for p in state["pi"]]
        self.uses = {float(g): int(n) for g, n in state["uses"].items()}
        self.refreshes, self.inversions = int(state["refreshes"]), int(state["inversions"])
        self._explicit = None


class CholeskyBlockDiagonal(KroneckerInverse):
    """F̌⁻¹ v with fresh factors, by Cholesky solves of the damped factors — for methods that re-solve every
    iteration (KFRA's Algorithm 1 "solves two linear systems per layer", Botev et al. 2017, App. C), where an
    eigendecomposition per factor would cost several times more. Same operator as :class:`BlockDiagonalInverse`.
    A refresh only keeps the factors; every application factorises the 2ℓ damped factors afresh.

    ``spread`` (data-parallel runs): each layer's two factorisations and solves are done by one rank, chosen by
    the cost a³ + g³, and the layer's update block broadcast (:func:`~secondorder.distributed.spread`)."""

    def __init__(self, spread: bool = False) -> None:
        super().__init__()
        self.spread = spread
        self.A: list[Tensor] = []
        self.G: list[Tensor] = []
        self.pi: list[float] = []

    def refresh(self, factors: Factors) -> None:
        A, G = list(factors["A"]), list(factors["G"])
        self.A = [a.to(torch.float64) for a in A]
        self.G = [g.to(torch.float64) for g in G]
        self.pi = trace_norm_pis(A, G)

    def _cholesky_factors(self, layers: list[int], gamma: float) -> tuple[list[Tensor], list[Tensor]]:
        """(L_A, L_G) of the given layers' damped factors Ã = A + πγI, G̃ = G + (γ/π)I, in one batched call."""
        shifts = [self.pi[i] * gamma for i in layers] + [gamma / self.pi[i] for i in layers]
        factors = batched_cholesky([self.A[i] for i in layers] + [self.G[i] for i in layers], shifts)
        return factors[: len(layers)], factors[len(layers) :]

    def _solve(self, layers: list[int], blocks: list[Tensor], gamma: float) -> list[Tensor]:
        """G̃⁻¹ V Ã⁻¹ (float64) for the given layers."""
        out = []
        for i, La, Lg in zip(layers, *self._cholesky_factors(layers, gamma), strict=True):
            left = torch.cholesky_solve(blocks[i].to(torch.float64), Lg)      # G̃⁻¹ V
            out.append(torch.cholesky_solve(left.T, La).T)                     # (G̃⁻¹ V) Ã⁻¹
        return out

    def apply(self, blocks: list[Tensor], damping: float) -> list[Tensor]:
        layers = list(range(len(self.A)))
        self.inversions += 2 * len(layers)
        if self.spread:
            solved = spread(layers, lambda mine: [[v] for v in self._solve(mine, blocks, damping)],
                            lambda i: [tuple(blocks[i].shape)],
                            [float(self.A[i].shape[0]) ** 3 + float(self.G[i].shape[0]) ** 3 for i in layers],
                            torch.float64, blocks[0].device if blocks else "cpu")
            out = [results[0] for results in solved]
        else:
            out = self._solve(layers, blocks, damping)
        return [o.to(V.dtype) for o, V in zip(out, blocks, strict=True)]

    def to_dense(self, damping: float) -> Tensor:
        La_list, Lg_list = self._cholesky_factors(list(range(len(self.A))), damping)
        self.inversions += 2 * len(self.A)
        return _block_diagonal([torch.kron(torch.cholesky_inverse(Lg), torch.cholesky_inverse(La))
                                for La, Lg in zip(La_list, Lg_list, strict=True)])

    def state_dict(self) -> dict[str, Any]:
        return {"A": list(self.A), "G": list(self.G), "pi": list(self.pi), "inversions": self.inversions}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.A, self.G = _to(state["A"], device), _to(state["G"], device)
        self.pi = [float(p) for p in state["pi"]]
        self.inversions = int(state["inversions"])


def _inverse_sqrt(decomposition: Decomposition) -> Tensor:
    values, vectors = decomposition
    return vectors @ torch.diag(values.clamp_min(1e-300).rsqrt()) @ vectors.T


def _inverse(decomposition: Decomposition) -> Tensor:
    values, vectors = decomposition
    return vectors @ torch.diag(1.0 / values.clamp_min(1e-300)) @ vectors.T


class BlockTridiagonalInverse(KroneckerInverse):
    """F̂⁻¹ = Ξᵀ Λ Ξ, its decompositions built per damping value γ (each needs its own: thesis §6.6.6).

    For γ: Ψᴬ_{i−1,i} = Ā_{i−1,i} Ã_i⁻¹ and Ψᴳ_{i,i+1} = G_{i,i+1} G̃_{i+1}⁻¹ (cross factors undamped), Σ_{i|i+1}⁻¹
    through App. B.2 with A = Ã_{i−1}, B = G̃_i, C = Ψᴬ Ã_i Ψᴬᵀ, D = Ψᴳ G̃_{i+1} Ψᴳᵀ and the minus sign, and the
    last block's Kronecker inverse. The first application of a γ after a refresh costs 2ℓ + 2(ℓ−1)
    eigendecompositions; the result is kept, so later applications of that γ cost none.

    ``spread`` (data-parallel runs): the 2ℓ decompositions of the damped factors, then the ℓ − 1 blocks' (K₁, K₂,
    1 − s₂s₁ᵀ), are shared out over the ranks by cost and broadcast (:func:`~secondorder.distributed.spread`).
    """

    def __init__(self, spread: bool = False) -> None:
        super().__init__()
        self.spread = spread
        self.factors: dict[str, list[Tensor]] = {"A": [], "G": [], "A_cross": [], "G_cross": []}
        self.pi: list[float] = []
        self.refreshes = 0
        self.built: dict[float, dict[str, list[Tensor]]] = {}

    def refresh(self, factors: Factors) -> None:
        self.factors = {key: list(factors[key]) for key in ("A", "G", "A_cross", "G_cross")}
        self.pi = trace_norm_pis(self.factors["A"], self.factors["G"])
        self.built = {}
        self.refreshes += 1

    def _build(self, gamma: float) -> dict[str, list[Tensor]]:
        """Ψ, Σ⁻¹ (App. B.2: K₁, K₂ and 1 − s₂s₁ᵀ) and the last block's inverses for damping γ."""
        A, G, A_cross, G_cross, pi = (*(self.factors[k] for k in ("A", "G", "A_cross", "G_cross")), self.pi)
        n = len(A)
        eye = [torch.eye(a.shape[0], dtype=torch.float64, device=a.device) for a in A]
        eyeg = [torch.eye(g.shape[0], dtype=torch.float64, device=g.device) for g in G]
        Ad = [A[i].to(torch.float64) + pi[i] * gamma * eye[i] for i in range(n)]
        Gd = [G[i].to(torch.float64) + gamma / pi[i] * eyeg[i] for i in range(n)]
        decompositions = spread_eigh([*Ad, *Gd]) if self.spread else batched_eigh([*Ad, *Gd])
        dA, dG = decompositions[:n], decompositions[n:]
        self.inversions += 2 * n + 2 * (n - 1)
        psi_A = [A_cross[i].to(torch.float64) @ _inverse(dA[i + 1]) for i in range(n - 1)]
        psi_G = [G_cross[i].to(torch.float64) @ _inverse(dG[i + 1]) for i in range(n - 1)]

        def blocks(pairs: list[int]) -> list[list[Tensor]]:
            """[K₁, K₂, 1 − s₂s₁ᵀ] of each block (i, i+1): two eigendecompositions each."""
            out = []
            for i in pairs:
                a_half, g_half = _inverse_sqrt(dA[i]), _inverse_sqrt(dG[i])
                C = psi_A[i] @ Ad[i + 1] @ psi_A[i].T
                D = psi_G[i] @ Gd[i + 1] @ psi_G[i].T
                s1, e1 = robust_eigh(a_half @ C @ a_half)
                s2, e2 = robust_eigh(g_half @ D @ g_half)
                s1, s2 = s1.clamp(0.0, 1.0 - 1e-12), s2.clamp(0.0, 1.0 - 1e-12)
                out.append([a_half @ e1, g_half @ e2, 1.0 - s2[:, None] * s1[None, :]])
            return out

        pairs = list(range(n - 1))
        if self.spread:
            sizes = [(A[i].shape[0], G[i].shape[0]) for i in pairs]
            built = spread(pairs, blocks, lambda i: [(sizes[i][0],) * 2, (sizes[i][1],) * 2, sizes[i][::-1]],
                           [float(a) ** 3 + float(g) ** 3 for a, g in sizes], torch.float64, A[0].device)
        else:
            built = blocks(pairs)
        return {"psi_A": psi_A, "psi_G": psi_G, "K_A": [b[0] for b in built], "K_G": [b[1] for b in built],
                "denominator": [b[2] for b in built], "last": [_inverse(dA[-1]), _inverse(dG[-1])]}

    def _for(self, gamma: float) -> dict[str, list[Tensor]]:
        if gamma not in self.built:
            self.built[gamma] = self._build(gamma)
        return self.built[gamma]

    def apply(self, blocks: list[Tensor], damping: float) -> list[Tensor]:
        """F̂⁻¹ v blockwise (Ξ, then Λ, then Ξᵀ), damped with γ = ``damping``."""
        d = self._for(damping)
        psi_A, psi_G = d["psi_A"], d["psi_G"]
        n = len(blocks)
        V = [b.to(torch.float64) for b in blocks]
        U = [V[i] - psi_G[i] @ V[i + 1] @ psi_A[i].T for i in range(n - 1)] + [V[-1]]
        W = []
        for i in range(n - 1):
            K1, K2, denominator = d["K_A"][i], d["K_G"][i], d["denominator"][i]
            W.append(K2 @ ((K2.T @ U[i] @ K1) / denominator) @ K1.T)
        a_inv, g_inv = d["last"]
        W.append(g_inv @ U[-1] @ a_inv)
        out = [W[0]] + [W[i] - psi_G[i - 1].T @ W[i - 1] @ psi_A[i - 1] for i in range(1, n)]
        return [o.to(b.dtype) for o, b in zip(out, blocks, strict=True)]

    def to_dense(self, damping: float) -> Tensor:
        """Ξᵀ Λ Ξ with Ξ = I − (block (i, i+1) = Ψᴳ ⊗ Ψᴬ) and Λ_i = (K₂ ⊗ K₁) diag(1 ⊘ (1 − s₂s₁ᵀ)) (K₂ ⊗ K₁)ᵀ."""
        d = self._for(damping)
        a_inv, g_inv = d["last"]
        lam = [torch.kron(K2, K1) @ torch.diag(1.0 / den.reshape(-1)) @ torch.kron(K2, K1).T
               for K1, K2, den in zip(d["K_A"], d["K_G"], d["denominator"], strict=True)]
        lam.append(torch.kron(g_inv, a_inv))
        sizes = [block.shape[0] for block in lam]
        offsets = [0, *torch.tensor(sizes).cumsum(0).tolist()]
        xi = torch.eye(offsets[-1], dtype=torch.float64, device=a_inv.device)
        for i in range(len(lam) - 1):
            xi[offsets[i] : offsets[i + 1], offsets[i + 1] : offsets[i + 2]] = -torch.kron(d["psi_G"][i],
                                                                                          d["psi_A"][i])
        return xi.T @ _block_diagonal(lam) @ xi

    def state_dict(self) -> dict[str, Any]:
        return {**{key: list(value) for key, value in self.factors.items()}, "pi": list(self.pi),
                "built": {gamma: {k: list(v) for k, v in d.items()} for gamma, d in self.built.items()},
                "refreshes": self.refreshes, "inversions": self.inversions}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.factors = {key: _to(state[key], device) for key in ("A", "G", "A_cross", "G_cross")}
        self.pi = [float(p) for p in state["pi"]]
        self.built = {float(gamma): {k: _to(v, device) for k, v in d.items()} for gamma, d in state["built"].items()}
        self.refreshes, self.inversions = int(state["refreshes"]), int(state["inversions"])
