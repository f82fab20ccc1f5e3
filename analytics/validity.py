"""The condition every valid minute and hour meets besides availability: its numbers are usable.

A minute or hour whose flow, CO2 and clinker each meet the valid fraction can still carry numbers
that are no numbers: a mean of finite but absurd values overflows (a flow of 1e308 gives an
infinite CO2, which JSON shows as null). Such a period is not valid. Its CO2 must be finite, its
clinker too, and its intensity finite wherever there is clinker to divide by (a kiln that made no
clinker has no intensity; that alone does not make its CO2 invalid).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def _floats(x: npt.ArrayLike | float | None) -> npt.NDArray[np.float64]:
    return np.asarray(np.nan if x is None else x, dtype=np.float64)


def numbers_usable(
    co2: npt.ArrayLike | float | None,
    clinker: npt.ArrayLike | float | None,
    intensity: npt.ArrayLike | float | None,
) -> npt.NDArray[np.bool_]:
    """True where CO2 [t or t/h] and clinker are finite and the intensity is finite where clinker > 0.

    None (or NaN) counts as not finite; arrays broadcast.
    """
    c, k, i = _floats(co2), _floats(clinker), _floats(intensity)
    finite_k = np.isfinite(k)
    with np.errstate(invalid="ignore"):
        no_clinker = finite_k & (k <= 0)
    return np.isfinite(c) & finite_k & (np.isfinite(i) | no_clinker)
