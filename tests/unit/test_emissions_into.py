"""The in-place mass-flow kernels give what the plain functions give (WE1-WE3), to rounding."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from analytics import emissions as em


def _stack(n: int, seed: int = 7) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(3e5, 7e5, n),  # actual wet flow [m3/h]
        rng.uniform(90.0, 160.0, n),  # temperature [degC]
        rng.uniform(98.0, 102.0, n),  # absolute pressure [kPa]
        rng.uniform(5.0, 15.0, n),  # H2O [vol %]
        rng.uniform(15.0, 30.0, n),  # dry CO2 [vol %]
    )


def _plain(q: object, t: object, p: object, h: object, c: object) -> np.ndarray:
    return em.co2_mass_flow_t_per_h(em.standard_dry_flow(q, t, p, h), c)


@pytest.mark.parametrize("n", [1, 1000, em.BLOCK_SAMPLES, 2 * em.BLOCK_SAMPLES + 17])
def test_blocked_kernel_matches_the_plain_functions(n: int) -> None:
    q, t, p, h, c = _stack(n)
    out = np.full(n, -1.0)
    result = em.stack_co2_mass_flow_into(out, q, t, p, h, c)
    assert result is out
    assert_allclose(out, _plain(q, t, p, h, c), rtol=1e-14)


def test_worked_example_through_the_blocked_kernel() -> None:
    # WE1-WE3 (docs/method.md § 14): 650 000 m3/h at 120 degC, 101.0 - 0.8 kPa, 11 % H2O, 22 % dry CO2
    out = np.empty(3)
    em.stack_co2_mass_flow_into(out, np.full(3, 650_000.0), 120.0, 100.2, 11.0, 22.0, block=2)
    assert_allclose(out, 171.691, rtol=2e-6)


def test_scalars_broadcast_over_blocks_and_small_blocks_change_nothing() -> None:
    q, t, _, h, c = _stack(5000)
    out = em.stack_co2_mass_flow_into(np.empty(5000), q, t, 100.9, h, c, block=333)
    assert_allclose(out, _plain(q, t, 100.9, h, c), rtol=1e-14)


def test_nan_propagates_and_empty_input_is_fine() -> None:
    q, t, p, h, c = _stack(10)
    t[3] = np.nan
    c[7] = np.nan
    out = em.stack_co2_mass_flow_into(np.empty(10), q, t, p, h, c)
    assert np.isnan(out[[3, 7]]).all()
    assert np.isfinite(np.delete(out, [3, 7])).all()
    empty = np.empty(0)
    assert len(em.stack_co2_mass_flow_into(empty, empty, empty, empty, empty, empty)) == 0


def test_two_step_kernels_write_in_place() -> None:
    q, t, p, h, c = _stack(100)
    flow = em.standard_dry_flow_into(np.empty(100), q, t, p, h)
    assert_allclose(flow, em.standard_dry_flow(q, t, p, h), rtol=1e-14)
    mass = em.co2_mass_flow_into(flow, flow, c, density_kg_per_nm3=1.9)
    assert mass is flow
    assert_allclose(mass, em.co2_mass_flow_t_per_h(em.standard_dry_flow(q, t, p, h), c, 1.9), rtol=1e-14)
