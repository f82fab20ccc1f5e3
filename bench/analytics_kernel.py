"""Figure 4: samples/s of the CO2 mass-flow computation over 10 M samples, against memory bandwidth.

Inputs per sample: actual wet flow, temperature, absolute pressure, H2O and dry CO2 (float64
arrays of 10 M, 400 MB in all); output: CO2 mass flow [t/h]. Timed, each after a warm-up, 3
times, median (wall clock):

- ceiling: ``np.copyto`` of the same five arrays into preallocated ones (reads and writes each
  array once: the memory-bandwidth bound of any pass over the inputs);
- naive: ``co2_mass_flow_t_per_h(standard_dry_flow(q, t, p, h), co2)``, a temporary per step;
- preallocated: ``standard_dry_flow_into`` + ``co2_mass_flow_into`` on full-length buffers;
- blocked: ``stack_co2_mass_flow_into``, the same steps on cache-sized blocks (the figure);
- the pure-Python loop over a 200 000-sample subset, for scale.

    RESULT analytics_kernel value=<blocked samples/s> unit=samples/s baseline=<copy samples/s> ratio=...
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from common import log, repeat_median, result_line

from analytics import emissions as em

PYTHON_SUBSET = 200_000


def stack_inputs(n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(1)
    return (
        rng.uniform(4e5, 7e5, n),  # actual wet flow [m3/h]
        rng.uniform(100.0, 140.0, n),  # temperature [degC]
        rng.uniform(99.0, 101.5, n),  # absolute pressure [kPa]
        rng.uniform(8.0, 14.0, n),  # H2O [vol %]
        rng.uniform(18.0, 28.0, n),  # dry CO2 [vol %]
    )


def rate(fn: Callable[[], object], n: int, repeats: int) -> tuple[float, list[float]]:
    def one() -> float:
        started = time.perf_counter()
        fn()
        return n / (time.perf_counter() - started)

    return repeat_median(one, repeats)


def python_loop(inputs: tuple[np.ndarray, ...]) -> float:
    """Samples/s of a plain Python loop over lists (conversion to lists not timed)."""
    q, t, p, h, c = (a[:PYTHON_SUBSET].tolist() for a in inputs)
    tn, pn, rho = em.T_N_K, em.P_N_KPA, em.CO2_DENSITY_KG_PER_NM3
    started = time.perf_counter()
    out = [
        qi * (tn / (ti + tn)) * (pi / pn) * (1.0 - hi / 100.0) * (ci / 100.0) * (rho / 1000.0)
        for qi, ti, pi, hi, ci in zip(q, t, p, h, c, strict=True)
    ]
    elapsed = time.perf_counter() - started
    assert len(out) == len(q)
    return len(q) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.samples
    q, t, p, h, c = inputs = stack_inputs(n)
    copies = [np.empty(n) for _ in inputs]
    out, scratch = np.empty(n), np.empty(n)

    def copy() -> None:
        for src, dst in zip(inputs, copies, strict=True):
            np.copyto(dst, src)

    def preallocated() -> None:
        em.standard_dry_flow_into(out, q, t, p, h, scratch)
        em.co2_mass_flow_into(out, out, c)

    variants: dict[str, Callable[[], object]] = {
        "copy (ceiling)": copy,
        "naive": lambda: em.co2_mass_flow_t_per_h(em.standard_dry_flow(q, t, p, h), c),
        "preallocated": preallocated,
        "blocked": lambda: em.stack_co2_mass_flow_into(out, q, t, p, h, c),
    }
    rates = {}
    for name, fn in variants.items():
        rates[name], runs = rate(fn, n, args.repeats)
        each = ", ".join(f"{r / 1e6:.1f}" for r in runs)
        log(f"analytics_kernel {name:15} {rates[name] / 1e6:8.1f} M samples/s  ({each})")
    reference = em.co2_mass_flow_t_per_h(em.standard_dry_flow(q, t, p, h), c)
    em.stack_co2_mass_flow_into(out, q, t, p, h, c)
    np.testing.assert_allclose(out, reference, rtol=1e-13)
    loop = python_loop(inputs)
    ceiling = rates["copy (ceiling)"]
    log(f"analytics_kernel {'python loop':15} {loop / 1e6:8.2f} M samples/s  ({PYTHON_SUBSET:,} samples)")
    for name in ("naive", "preallocated", "blocked"):
        log(f"  {name}: {rates[name] / ceiling:.2f} of the copy; {rates[name] / loop:.0f}x the Python loop")
    result_line("analytics_kernel", rates["blocked"], "samples/s", ceiling, rates["blocked"] / ceiling)


if __name__ == "__main__":
    main()
