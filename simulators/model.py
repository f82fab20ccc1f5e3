"""A dry preheater/precalciner kiln, stack side (docs/method.md § 15).

Drivers (clinker production, specific fuel energy, excess/false air, moisture, raw mill on/off) vary slowly
and deterministically with time and seed. From them the model derives, per instant:

- CO2 [t/h] = clinker × EF_calcination + clinker × specific energy × EF_coal (the ground truth);
- the dry flue-gas volume from an air/O2 balance, so that CO2 and O2 (dry) are consistent with it;
- wet normal flow via H2O, then actual flow via stack temperature and absolute pressure.

Inverting the domain formulas this way means the measured route (actual → normal → dry → × CO2 % × ρ)
gives back the truth per instant to rounding error. `KilnModel.sample` is vectorised over an array of
times [ns since epoch, UTC] and depends only on those times and the seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from simulators import physics as ph
from simulators.variation import SlowVariation, hash_normal, hash_uniform, second_index, stream_key

SIGNAL_UNITS: dict[str, str] = {
    "stack.flow": "m3/h",
    "stack.temperature": "degC",
    "stack.static_pressure": "kPa",
    "stack.barometric_pressure": "kPa",
    "stack.h2o": "vol%",
    "stack.co2": "vol%",
    "stack.o2": "vol%",
    "stack.co": "mg/Nm3",
    "stack.nox": "mg/Nm3",
    "stack.so2": "mg/Nm3",
    "stack.dust": "mg/Nm3",
    "clinker.rate": "t/h",
    "fuel.rate": "t/h",
}
"""Instrument signals and their units; the keys become OPC UA node names `<kiln>.<key>`."""
SIGNAL_RANGES: dict[str, tuple[float, float]] = {
    "stack.flow": (0.0, 1_500_000.0),
    "stack.temperature": (0.0, 400.0),
    "stack.static_pressure": (-10.0, 10.0),
    "stack.barometric_pressure": (80.0, 110.0),
    "stack.h2o": (0.0, 30.0),
    "stack.co2": (0.0, 30.0),
    "stack.o2": (0.0, 25.0),
    "stack.co": (0.0, 5000.0),
    "stack.nox": (0.0, 2000.0),
    "stack.so2": (0.0, 1000.0),
    "stack.dust": (0.0, 100.0),
    "clinker.rate": (0.0, 400.0),
    "fuel.rate": (0.0, 100.0),
}
"""Instrument ranges, served as each OPC UA node's EURange."""
SIGNAL_KEYS: tuple[str, ...] = tuple(SIGNAL_UNITS)
TRUTH_KEY = "truth.co2_t_per_h"
ANALYSER_CHANNELS: dict[str, str] = {
    "co2": "stack.co2",
    "o2": "stack.o2",
    "h2o": "stack.h2o",
    "co": "stack.co",
    "nox": "stack.nox",
    "so2": "stack.so2",
    "dust": "stack.dust",
}
"""CEMS analyser channels (MQTT channel name → signal key)."""

_NS = 1_000_000_000


@dataclass(frozen=True)
class KilnParams:
    """Operating point and variation of one kiln. Defaults: 5000 t/d dry kiln on coal (method.md § 15)."""

    clinker_t_per_h: float = 5000.0 / 24.0
    specific_energy_gj_per_t: float = 3.3
    ef_fuel_t_per_tj: float = ph.EF_COAL_T_PER_TJ
    ncv_gj_per_t: float = ph.NCV_COAL_GJ_PER_T
    ef_calcination_t_per_t: float = ph.EF_CALCINATION_T_PER_T
    o2_dry_pct: float = 8.5
    h2o_pct: float = 11.0
    stack_temp_c: float = 118.0
    static_pressure_kpa: float = -0.8
    barometric_kpa: float = 101.3
    co_mg_nm3: float = 650.0
    nox_mg_nm3: float = 400.0
    so2_mg_nm3: float = 120.0
    dust_mg_nm3: float = 8.0
    # Slow variation: relative sigma for rates and concentrations, absolute for H2O [vol %], T [°C], p [kPa].
    clinker_sigma: float = 0.012
    energy_sigma: float = 0.012
    o2_sigma: float = 0.035
    h2o_sigma: float = 0.5
    temp_sigma: float = 3.0
    static_sigma: float = 0.04
    baro_sigma: float = 0.12
    # Per-second jitter (relative sigma) of clinker feed and false air.
    clinker_jitter: float = 0.003
    o2_jitter: float = 0.004
    # CO spikes: one chance per window, lasting 30-180 s, peaking 1000-4000 mg/Nm3 above the base.
    co_spike_window_s: int = 1800
    co_spike_probability: float = 0.2
    # Raw mill: stopped for `raw_mill_stop_h` every `raw_mill_cycle_h` (0 = always running).
    raw_mill_cycle_h: float = 0.0
    raw_mill_stop_h: float = 1.0
    raw_mill_ramp_s: float = 600.0
    mill_off_temp_rise_c: float = 40.0
    mill_off_h2o_drop_pct: float = 3.5


class KilnModel:
    """Physically consistent stack signals and CO2 ground truth of one kiln, seeded."""

    def __init__(self, kiln_id: str, seed: int = 1, params: KilnParams | None = None) -> None:
        self.kiln_id = kiln_id
        self.seed = seed
        self.params = p = params or KilnParams()
        self._key = stream_key(seed, kiln_id)

        def slow(
            name: str, sigma: float, periods: tuple[float, float] = (900.0, 4 * 3600.0)
        ) -> SlowVariation:
            return SlowVariation(stream_key(self._key, name), sigma, periods)

        self._clinker = slow("clinker", p.clinker_sigma)
        self._energy = slow("energy", p.energy_sigma)
        self._o2 = slow("o2", p.o2_sigma, (600.0, 3 * 3600.0))
        self._h2o = slow("h2o", p.h2o_sigma)
        self._temp = slow("temp", p.temp_sigma)
        self._static = slow("static", p.static_sigma, (300.0, 3600.0))
        self._baro = slow("baro", p.baro_sigma, (6 * 3600.0, 24 * 3600.0))
        self._co = slow("co", 0.3, (300.0, 2 * 3600.0))
        self._nox = slow("nox", 0.08)
        self._so2 = slow("so2", 0.2)
        self._dust = slow("dust", 0.2, (300.0, 3600.0))
        self._mill_phase = hash_uniform(stream_key(self._key, "mill-phase"), np.zeros(1, np.int64))[0]

    def _jitter(self, name: str, t_ns: np.ndarray, sigma: float) -> np.ndarray:
        if sigma == 0.0:
            return np.zeros(t_ns.shape)
        return sigma * np.clip(hash_normal(stream_key(self._key, name), second_index(t_ns)), -4.0, 4.0)

    def raw_mill_off(self, t_ns: np.ndarray) -> np.ndarray:
        """Fraction [0..1] of the raw mill being stopped (ramps over `raw_mill_ramp_s`)."""
        p = self.params
        if p.raw_mill_cycle_h <= 0.0:
            return np.zeros(t_ns.shape)
        cycle_s = p.raw_mill_cycle_h * 3600.0
        cycle_ns = np.int64(round(cycle_s * 1e9))
        shift_ns = np.int64(round(self._mill_phase * cycle_s * 1e9))
        pos_s = ((t_ns + shift_ns) % cycle_ns).astype(np.float64) / 1e9
        stop_s = p.raw_mill_stop_h * 3600.0
        ramp = max(p.raw_mill_ramp_s, 1.0)
        up = np.clip(pos_s / ramp, 0.0, 1.0)
        down = np.clip((stop_s - pos_s) / ramp + 1.0, 0.0, 1.0)
        return np.minimum(up, down)

    def _co_spikes(self, t_ns: np.ndarray) -> np.ndarray:
        p = self.params
        window_ns = np.int64(p.co_spike_window_s) * _NS
        k = np.floor_divide(t_ns, window_ns)
        u = [hash_uniform(stream_key(self._key, "co-spike", i), k) for i in range(4)]
        offset_s = u[1] * (p.co_spike_window_s - 180.0)
        duration_s = 30.0 + 150.0 * u[2]
        amplitude = 1000.0 + 3000.0 * u[3]
        since_s = (t_ns - k * window_ns).astype(np.float64) / 1e9 - offset_s
        active = (u[0] < p.co_spike_probability) & (since_s >= 0.0) & (since_s < duration_s)
        return np.where(active, amplitude * np.exp(-3.0 * np.clip(since_s, 0.0, None) / duration_s), 0.0)

    def sample(self, t_ns: np.ndarray) -> dict[str, np.ndarray]:
        """All signals (see `SIGNAL_UNITS`) and `truth.co2_t_per_h` at times `t_ns` [ns since epoch, UTC]."""
        t = np.asarray(t_ns, dtype=np.int64)
        p = self.params
        mill_off = self.raw_mill_off(t)

        clinker = p.clinker_t_per_h * (
            1.0 + self._clinker(t) + self._jitter("clinker-j", t, p.clinker_jitter)
        )
        energy_gj_per_h = clinker * p.specific_energy_gj_per_t * (1.0 + self._energy(t))
        co2_fuel = energy_gj_per_h * p.ef_fuel_t_per_tj / 1000.0
        co2 = clinker * p.ef_calcination_t_per_t + co2_fuel

        # Dry flue gas from an O2 balance: air A brings X_O2_AIR·A of O2; fuel burns `demand` of it and
        # adds its CO2; calcination adds CO2. Dry gas D = A − demand + V_co2 and O2 dry = (X·A − demand)/D.
        v_co2 = co2 * 1000.0 / ph.RHO_CO2_KG_PER_NM3
        demand = co2_fuel * 1000.0 / ph.RHO_CO2_KG_PER_NM3 * ph.O2_PER_FUEL_CO2
        o2_pct = p.o2_dry_pct * (1.0 + self._o2(t) + self._jitter("o2-j", t, p.o2_jitter))
        x_o2 = o2_pct / 100.0
        q_dry = (demand * (1.0 / ph.X_O2_AIR - 1.0) + v_co2) / (1.0 - x_o2 / ph.X_O2_AIR)
        co2_pct = v_co2 / q_dry * 100.0

        h2o_pct = p.h2o_pct + self._h2o(t) - p.mill_off_h2o_drop_pct * mill_off
        temp_c = p.stack_temp_c + self._temp(t) + p.mill_off_temp_rise_c * mill_off
        static_kpa = p.static_pressure_kpa + self._static(t)
        baro_kpa = p.barometric_kpa + self._baro(t)
        q_wet = q_dry / (1.0 - h2o_pct / 100.0)
        q_actual = q_wet * ((temp_c + ph.T_N_K) / ph.T_N_K) * (ph.P_N_KPA / (baro_kpa + static_kpa))

        return {
            "stack.flow": q_actual,
            "stack.temperature": temp_c,
            "stack.static_pressure": static_kpa,
            "stack.barometric_pressure": baro_kpa,
            "stack.h2o": h2o_pct,
            "stack.co2": co2_pct,
            "stack.o2": o2_pct,
            "stack.co": p.co_mg_nm3 * np.exp(self._co(t)) + self._co_spikes(t),
            "stack.nox": p.nox_mg_nm3 * np.exp(self._nox(t)),
            "stack.so2": p.so2_mg_nm3 * np.exp(self._so2(t)),
            "stack.dust": p.dust_mg_nm3 * np.exp(self._dust(t) + self._jitter("dust-j", t, 0.05)),
            "clinker.rate": clinker,
            "fuel.rate": energy_gj_per_h / p.ncv_gj_per_t,
            TRUTH_KEY: co2,
        }


def build_models(
    kiln_ids: Iterable[str], seed: int = 1, params: KilnParams | dict[str, KilnParams] | None = None
) -> list[KilnModel]:
    """One model per kiln id; `params` may be shared or given per kiln."""
    models = []
    for kiln_id in kiln_ids:
        kp = params.get(kiln_id) if isinstance(params, dict) else params
        models.append(KilnModel(kiln_id, seed, kp))
    return models
