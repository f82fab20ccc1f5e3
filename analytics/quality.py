"""Quality codes that travel with every value.

A quality is one ``uint8``: the two low bits hold the class (good, uncertain, bad), the
high bits hold flags that say *why* a value is not usable. Collectors never drop a value
for its quality; they set these bits and the validity rules decide.

    bit 0-1  class: 0 good, 1 uncertain, 2 bad
    bit 2    maintenance      (analyser in maintenance / filter change)
    bit 3    calibration      (zero/span or QAL3 check in progress)
    bit 4    fault            (analyser or transmitter fault, NE 43 failure band)
    bit 5    out of range     (outside the signal's valid or calibration range)
    bit 6    substituted      (the source substituted or overrode the value; kilnwatch's own
                               substitution of invalid hours is a field of the hour, not a bit)
    bit 7    comm loss        (source disconnected; value no longer current)
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

GOOD: Final = 0
UNCERTAIN: Final = 1
BAD: Final = 2
CLASS_MASK: Final = 0b11

MAINTENANCE: Final = 1 << 2
CALIBRATION: Final = 1 << 3
FAULT: Final = 1 << 4
OUT_OF_RANGE: Final = 1 << 5
SUBSTITUTED: Final = 1 << 6
COMM_LOSS: Final = 1 << 7

#: Flags that make a value invalid for averaging, whatever its class.
INVALIDATING: Final = MAINTENANCE | CALIBRATION | FAULT | OUT_OF_RANGE | COMM_LOSS

#: The flag behind each flag-named reason of the completeness ledger (its order of precedence
#: is :data:`analytics.ledger.LEDGER_REASONS`).
REASON_FLAGS: Final[dict[str, int]] = {
    "maintenance": MAINTENANCE,
    "calibration": CALIBRATION,
    "fault": FAULT,
    "out_of_range": OUT_OF_RANGE,
    "comm_loss": COMM_LOSS,
}

#: Status words used in configuration and the API, mapped to quality bits.
STATUS_QUALITY: Final[dict[str, int]] = {
    "ok": GOOD,
    "maintenance": UNCERTAIN | MAINTENANCE,
    "calibration": UNCERTAIN | CALIBRATION,
    "fault": BAD | FAULT,
}

QualityArray = npt.NDArray[np.uint8]


def is_valid(quality: QualityArray) -> npt.NDArray[np.bool_]:
    """True where a value may enter an average: class not bad and no invalidating flag."""
    q = np.asarray(quality, dtype=np.uint8)
    return ((q & CLASS_MASK) != BAD) & ((q & INVALIDATING) == 0)


def describe(quality: int) -> str:
    """Short human word for one quality code, for the API and the page."""
    q = int(quality)
    if q & COMM_LOSS:
        return "comm_loss"
    if q & FAULT:
        return "fault"
    if q & CALIBRATION:
        return "calibration"
    if q & MAINTENANCE:
        return "maintenance"
    if q & OUT_OF_RANGE:
        return "out_of_range"
    cls = q & CLASS_MASK
    if cls == BAD:
        return "bad"
    if cls == UNCERTAIN:
        return "uncertain"
    return "good"
