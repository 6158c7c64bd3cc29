"""Curvature engine: matrix-free GGN / Fisher / Hessian products and diagonal estimates.

Usable outside the runner: an operator needs a :class:`~secondorder.problems.base.Problem` (model, matching
loss, ℓ2 prior) and a batch; it acts on parameter dicts (``op(v)``) or flat vectors (``op.mv(v)``).

    G = GGNOperator(problem, batch)          # cached linearisation: products inside CG re-run no forward
    Gv = G(v)                                # dict in, dict out
"""

from secondorder.curvature.diagonal import empirical_fisher_diagonal, ggn_diagonal_estimate
from secondorder.curvature.params import ParamDict, ParamSpace, detached_params
from secondorder.curvature.products import (
    CurvatureOperator,
    FisherOperator,
    GGNOperator,
    HessianOperator,
    LinearisedOutputs,
    StructuralDampingTerm,
)

__all__ = [
    "CurvatureOperator", "FisherOperator", "GGNOperator", "HessianOperator", "LinearisedOutputs", "ParamDict",
    "ParamSpace", "StructuralDampingTerm", "detached_params", "empirical_fisher_diagonal", "ggn_diagonal_estimate",
]
