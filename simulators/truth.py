"""Ground truth of a simulated kiln, computed from the model itself (never through the collectors).

The simulators step on a fixed grid of simulated time: tick k covers [k·tick, (k+1)·tick) in epoch time and
every value is constant over its tick (it is the model sampled at k·tick). The truth of an interval is
therefore the exact integral Σ co2_t_per_h(k·tick) × overlap_k / 3600 [t].

`regulatory_hour` gives what MRR Art. 43/44 reports for an hour: hourly mean dry normal flow × hourly mean
dry CO2 concentration × ρ_CO2. It differs from the integral by the within-hour covariance of flow and
concentration, which tests report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators import physics as ph
from simulators.model import TRUTH_KEY, KilnModel

_NS = 1_000_000_000
_HOUR_NS = 3600 * _NS
_CHUNK_TICKS = 86_400


@dataclass(frozen=True)
class HourTruth:
    """One clock hour of one kiln."""

    hour_ns: int
    co2_t: float
    """Integral of the true CO2 mass flow over the hour [t]."""
    regulatory_co2_t: float
    """Hourly mean dry flow × hourly mean CO2 dry × ρ_CO2 × 1 h [t] (MRR Art. 43)."""
    clinker_t: float
    """Clinker produced in the hour [t]."""

    @property
    def covariance_rel(self) -> float:
        """(regulatory − integral) / integral [-]."""
        return self.regulatory_co2_t / self.co2_t - 1.0


class GroundTruth:
    """Integrals of one kiln model on the simulators' tick grid (`tick_s` [s])."""

    def __init__(self, model: KilnModel, tick_s: float = 1.0) -> None:
        self.model = model
        self.tick_ns = round(tick_s * _NS)
        if self.tick_ns <= 0:
            raise ValueError(f"tick_s must be > 0, got {tick_s}")

    def _ticks(self, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Tick start times [ns] overlapping [start, end) and the overlap of each [s]."""
        if end_ns < start_ns:
            raise ValueError(f"end {end_ns} before start {start_ns}")
        first = start_ns // self.tick_ns
        last = -(-end_ns // self.tick_ns)  # ceil
        t = np.arange(first, last, dtype=np.int64) * self.tick_ns
        overlap = np.minimum(t + self.tick_ns, end_ns) - np.maximum(t, start_ns)
        return t, np.clip(overlap, 0, None).astype(np.float64) / _NS

    def _integral_t(self, key: str, start_ns: int, end_ns: int) -> float:
        if end_ns < start_ns:
            raise ValueError(f"end {end_ns} before start {start_ns}")
        total = 0.0
        step = _CHUNK_TICKS * self.tick_ns
        for chunk_start in range(start_ns, end_ns, step):
            t, overlap_s = self._ticks(chunk_start, min(chunk_start + step, end_ns))
            total += float(np.dot(self.model.sample(t)[key], overlap_s)) / 3600.0
        return total

    def co2_t(self, start_ns: int, end_ns: int) -> float:
        """True CO2 emitted in [start_ns, end_ns) [t]."""
        return self._integral_t(TRUTH_KEY, start_ns, end_ns)

    def mean_co2_t_per_h(self, start_ns: int, end_ns: int) -> float:
        """Time-weighted mean true CO2 mass flow over [start_ns, end_ns) [t/h]."""
        if end_ns <= start_ns:
            raise ValueError("empty interval")
        return self.co2_t(start_ns, end_ns) / ((end_ns - start_ns) / _HOUR_NS)

    def clinker_t(self, start_ns: int, end_ns: int) -> float:
        """Clinker produced in [start_ns, end_ns) [t]."""
        return self._integral_t("clinker.rate", start_ns, end_ns)

    def regulatory_hour(self, start_ns: int) -> float:
        """CO2 of the hour from `start_ns` as MRR Art. 43 computes it: mean flow × mean concentration [t]."""
        return self.hour(start_ns).regulatory_co2_t

    def hour(self, start_ns: int) -> HourTruth:
        """Integral, regulatory product and clinker of the hour [start_ns, start_ns + 1 h)."""
        end_ns = start_ns + _HOUR_NS
        t, w = self._ticks(start_ns, end_ns)
        s = self.model.sample(t)
        q_wet = ph.normal_wet_flow(
            s["stack.flow"],
            s["stack.temperature"],
            s["stack.barometric_pressure"],
            s["stack.static_pressure"],
        )
        q_dry = ph.dry_flow(q_wet, s["stack.h2o"])
        hours = float(w.sum()) / 3600.0
        mean_flow = float(np.dot(q_dry, w) / w.sum())
        mean_co2 = float(np.dot(s["stack.co2"], w) / w.sum())
        return HourTruth(
            hour_ns=start_ns,
            co2_t=float(np.dot(s[TRUTH_KEY], w)) / 3600.0,
            regulatory_co2_t=float(ph.co2_mass_flow(np.array(mean_flow), np.array(mean_co2))) * hours,
            clinker_t=float(np.dot(s["clinker.rate"], w)) / 3600.0,
        )

    def hours(self, start_ns: int, end_ns: int) -> list[HourTruth]:
        """Every whole clock hour that starts in [start_ns, end_ns) and ends by end_ns."""
        first = -(-start_ns // _HOUR_NS) * _HOUR_NS
        return [self.hour(h) for h in range(first, end_ns - _HOUR_NS + 1, _HOUR_NS)]
