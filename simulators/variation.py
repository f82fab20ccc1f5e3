"""Deterministic, seeded variation as pure functions of time.

Everything here is a function of (seed, time) only, with no state, so any process can recompute the same
value for the same instant, in any order and in any batch size:

- `SlowVariation`: a sum of a few slow sinusoids with seeded periods and phases (process drift within an
  hour: a few %).
- `hash_uniform` / `hash_normal`: counter-based noise (splitmix64 of seed, stream and an integer index),
  used for per-second jitter and for deciding when random events such as CO spikes happen.
"""

from __future__ import annotations

import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_M53 = 2.0**-53


def stream_key(*parts: int | str) -> int:
    """A stable 64-bit key from seeds and names (zlib.crc32, unlike `hash()`, is not salted per process)."""
    key = 0
    for part in parts:
        raw = part.encode() if isinstance(part, str) else (int(part) % 2**64).to_bytes(8, "little")
        key = (key * 0x100000001B3 + zlib.crc32(raw) + 1) % 2**64
    return key


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def hash_uniform(key: int, index: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) numbers, one per integer in `index`, fixed by `key`."""
    idx = np.asarray(index, dtype=np.int64).astype(np.uint64)
    z = _splitmix64(_splitmix64(idx ^ np.uint64(key)))
    return (z >> np.uint64(11)).astype(np.float64) * _TWO_POW_M53


def hash_normal(key: int, index: np.ndarray) -> np.ndarray:
    """Standard normal numbers (Box-Muller on two hashed uniforms), one per integer in `index`."""
    u1 = hash_uniform(key, index)
    u2 = hash_uniform(stream_key(key, "box-muller"), index)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


class SlowVariation:
    """Zero-mean slow drift: sum of `n` sinusoids with log-uniform periods in `periods_s` [s].

    The standard deviation over a long time is `sigma` (each component has equal weight).
    """

    def __init__(
        self,
        key: int,
        sigma: float,
        periods_s: tuple[float, float] = (900.0, 4 * 3600.0),
        n: int = 4,
    ) -> None:
        rng = np.random.default_rng(key)
        lo, hi = np.log(periods_s[0]), np.log(periods_s[1])
        self.periods_s = np.exp(rng.uniform(lo, hi, n))
        self.phases = rng.uniform(0.0, 2.0 * np.pi, n)
        self.amplitude = sigma * np.sqrt(2.0 / n)

    def __call__(self, t_ns: np.ndarray) -> np.ndarray:
        t = np.asarray(t_ns, dtype=np.int64)
        out = np.zeros(t.shape, dtype=np.float64)
        for period, phase in zip(self.periods_s, self.phases, strict=True):
            # Reduce modulo the period in integer ns first so that epoch-sized times keep full precision.
            period_ns = np.int64(round(period * 1e9))
            frac = (t % period_ns).astype(np.float64) / float(period_ns)
            out += np.sin(2.0 * np.pi * frac + phase)
        return out * self.amplitude


def second_index(t_ns: np.ndarray) -> np.ndarray:
    """Whole seconds since epoch [s], used as the counter for per-second jitter."""
    return np.floor_divide(np.asarray(t_ns, dtype=np.int64), 1_000_000_000)
