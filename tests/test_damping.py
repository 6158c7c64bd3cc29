"""The Levenberg–Marquardt damping rule (optim/damping.py) against hand-computed sequences, in each method's own
floating-point convention (HF: λ·3/2 and λ·2/3; K-FAC/KFRA: λ/ω and λ·ω), with bounds, NaN and checkpoints."""

from __future__ import annotations

import math

import pytest

from secondorder.optim.damping import LevenbergMarquardt
from secondorder.optim.hf import HFConfig
from secondorder.optim.kfac import KFACConfig
from secondorder.optim.kfac_rnn import KFACRNNConfig

OMEGA = 0.95**5  # K-FAC's ω₁ (Martens & Grosse 2015, §6.5)


def run(rule: LevenbergMarquardt, ratios: list[float]) -> list[float]:
    return [rule.update(rho) for rho in ratios]


def test_kfac_convention_divides_by_omega_to_increase() -> None:
    """ρ > ¾ ⇒ λω, ρ < ¼ (or NaN, or −∞) ⇒ λ/ω, otherwise unchanged — the exact operations, not λ·(1/ω)."""
    rule = LevenbergMarquardt.from_config(KFACConfig())
    assert (rule.lam, rule.increase, rule.min_lambda, rule.max_lambda) == (150.0, None, None, None)
    l1 = 150.0 * OMEGA                        # ρ = 0.9
    l2 = l1 / OMEGA                           # ρ = 0.1
    l4 = l2 / OMEGA                           # ρ = 0.5: unchanged; then NaN: a failure
    l5 = l4 / OMEGA                           # ρ = −∞ (h rose)
    l6 = l5 * OMEGA                           # ρ = 0.8; then ρ = ¼ and ρ = ¾ exactly: unchanged
    ratios = [0.9, 0.1, 0.5, math.nan, -math.inf, 0.8, 0.25, 0.75]
    assert run(rule, ratios) == [l1, l2, l2, l4, l5, l6, l6, l6]  # bit for bit
    # the division is not a multiplication by 1/ω: somewhere along the way the two differ in the last bit
    by_inverse = LevenbergMarquardt(150.0, OMEGA, increase=1 / OMEGA)
    assert run(by_inverse, [0.0] * 40) != run(LevenbergMarquardt(150.0, OMEGA), [0.0] * 40)


def test_hf_convention_multiplies_and_clamps_to_its_bounds() -> None:
    """HF (thesis §4.6.5): ρ > ¾ ⇒ ⅔λ, ρ < ¼ ⇒ 3⁄2 λ, within [1e-12, 1e12]."""
    rule = LevenbergMarquardt.from_config(HFConfig())
    assert run(rule, [0.1, 0.9, 0.9, 0.5, math.nan]) == [45.0 * 1.5, 45.0 * 1.5 * (2 / 3), 45.0 * 1.5 * (2 / 3) *
                                                          (2 / 3), 45.0 * 1.5 * (2 / 3) * (2 / 3),
                                                          45.0 * 1.5 * (2 / 3) * (2 / 3) * 1.5]
    high = LevenbergMarquardt(0.9e12, 2 / 3, 1.5, min_lambda=1e-12, max_lambda=1e12)
    assert run(high, [0.0, 0.0, 1.0]) == [1e12, 1e12, 1e12 * (2 / 3)]
    low = LevenbergMarquardt(1.2e-12, 2 / 3, 1.5, min_lambda=1e-12, max_lambda=1e12)
    assert run(low, [1.0, 1.0, 0.0]) == [1e-12, 1e-12, 1.5e-12]


def test_equal_thresholds_are_the_kfra_bang_bang_rule() -> None:
    """KFRA (Botev et al. 2017, App. C.3.1): ρ_low = ρ_high = 0.75 — only ρ = 0.75 exactly leaves τ alone."""
    rule = LevenbergMarquardt(150.0, OMEGA, rho_low=0.75, rho_high=0.75)
    assert run(rule, [0.75, 0.7499, 0.7501]) == [150.0, 150.0 / OMEGA, 150.0 / OMEGA * OMEGA]


def test_a_rejected_step_raises_lambda_and_the_state_round_trips() -> None:
    rule = LevenbergMarquardt(2.0, 0.5, max_lambda=5.0)
    assert rule.fail() == 4.0 and rule.fail() == 5.0  # λ/0.5, then the bound
    state = rule.state_dict()
    assert state == {"lambda": 5.0} and all(type(v) is float for v in state.values())
    other = LevenbergMarquardt(1.0, 0.5, max_lambda=5.0)
    other.load_state_dict(state)
    assert run(other, [1.0, 0.0]) == run(rule, [1.0, 0.0]) == [2.5, 5.0]


@pytest.mark.parametrize("config", [HFConfig, KFACConfig, KFACRNNConfig])
def test_every_lm_config_shares_one_rule_for_its_values(config) -> None:
    """One set of checks (rho_low ≤ rho_high allowed, increase > 1 or null, ordered bounds) for every method."""
    def failures(**values):
        return [key for key, ok, _ in config(**values).check() if not ok]

    assert failures() == []
    assert failures(rho_low=0.75, rho_high=0.75) == []
    assert failures(rho_low=0.8, rho_high=0.75) == ["rho_low"]
    assert failures(lambda_increase=1.0) == ["lambda_increase"]
    assert failures(lambda_decrease=1.0) == ["lambda_decrease"]
    assert failures(initial_lambda=0.0) == ["initial_lambda"]
    assert failures(min_lambda=2.0, max_lambda=1.0) == ["max_lambda"]
