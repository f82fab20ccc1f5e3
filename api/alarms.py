"""Alarms and kiln status from what the service sees now; pure logic, fed one observation at a time.

An :class:`AlarmBook` gets an :class:`Observation` (wall clock, per kiln the newest minute, the
current quality word of each signal and the newest closed hour, and the state of each source)
and keeps the alarms that hold: each alarm opens with a start time and, once its condition is
gone, closes with an end time and moves to the list of cleared alarms.

Kinds: ``stale`` (no new valid minute for ``stale_after_s`` of wall-clock time), ``maintenance``,
``calibration`` and ``fault`` (signals of a kiln carrying that quality), ``source`` (a source
disconnected), ``intensity`` and ``co2`` (newest valid minute above the kiln's limit),
``completeness`` (newest closed hour below ``completeness_min``).

The kiln status is one word, the most important first: ``stale`` when no minute at all arrives,
``fault``, ``maintenance``, ``stale`` when minutes arrive but none is valid, ``no_data`` before the
first minute, ``catching_up`` while the newest minute lags the wall clock by more than
``catch_up_lag_s`` (a simulator or gateway replaying history), ``invalid``, ``valid``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from analytics.minutes import MINUTE_NS

from .page_config import AlarmSettings

_NS = 1_000_000_000
#: Stable codes of the alarm messages: the page renders ``code`` with ``params`` in its language
#: (catalogue key ``alarm.<code>``); ``message`` stays English for API clients.
ALARM_CODES = (
    "stale_no_minute",
    "stale_none_valid",
    "analyser_fault",
    "analyser_calibration",
    "analyser_maintenance",
    "source_disconnected",
    "source_disconnected_error",
    "limit_intensity",
    "limit_co2",
    "completeness_low",
)
#: Alarm message parameters: names to numbers or text (kiln names, signal lists, errors).
Params = dict[str, float | str]
#: Quality words (analytics.quality.describe) that name an analyser state, by alarm kind.
ANALYSER_STATES = ("fault", "calibration", "maintenance")


@dataclass(frozen=True, slots=True)
class MinuteSeen:
    start_ns: int
    revision: int
    valid: bool
    co2_t_per_h: float | None
    intensity_kg_per_t: float | None


@dataclass(frozen=True, slots=True)
class HourSeen:
    start_ns: int
    completeness: float


@dataclass(frozen=True, slots=True)
class SourceSeen:
    name: str
    kind: str
    connected: bool
    since_ns: int
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class KilnObservation:
    kiln: str
    name: str
    minute: MinuteSeen | None
    qualities: dict[str, str] = field(default_factory=dict)  # signal id -> quality word
    hour: HourSeen | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    now_ns: int
    kilns: list[KilnObservation]
    sources: list[SourceSeen] = field(default_factory=list)


@dataclass(slots=True)
class Alarm:
    key: str
    kind: str
    severity: str  # "alarm" (data cannot be trusted or a limit is exceeded) or "warning"
    kiln: str | None
    message: str
    start_ns: int
    end_ns: int | None = None
    data_time_ns: int | None = None  # event time the alarm refers to (a minute, an hour)
    subjects: tuple[str, ...] = ()  # signals or source concerned
    code: str = ""  # one of ALARM_CODES: the message in any language with ``params``
    params: Params = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.end_ns is None


@dataclass(frozen=True, slots=True)
class KilnStatus:
    status: str
    detail: str
    lag_s: float | None  # wall clock minus the end of the newest minute [s]
    minute_age_s: float | None  # wall-clock time since a new minute arrived [s]
    valid_age_s: float | None  # wall-clock time since a new valid minute arrived [s]


@dataclass
class _KilnMemory:
    minute_key: tuple[int, int] | None = None
    minute_arrival_ns: int | None = None
    valid_key: tuple[int, int] | None = None
    valid_arrival_ns: int | None = None
    last_valid: MinuteSeen | None = None


class AlarmBook:
    """The alarms of one service instance; ``version`` changes whenever the list or a status does."""

    def __init__(self, settings: AlarmSettings, now_ns: int) -> None:
        self.settings = settings
        self.started_ns = now_ns
        self.active: dict[str, Alarm] = {}
        self.cleared: deque[Alarm] = deque(maxlen=settings.keep_cleared)
        self.status: dict[str, KilnStatus] = {}
        self.version = 0
        self._memory: dict[str, _KilnMemory] = {}

    def update(self, obs: Observation) -> bool:
        """Apply one observation; True when an alarm opened, closed or changed, or a status changed."""
        wanted: dict[str, Alarm] = {}
        statuses: dict[str, KilnStatus] = {}
        for k in obs.kilns:
            statuses[k.kiln] = self._kiln(k, obs.now_ns, wanted)
        for s in obs.sources:
            if not s.connected and obs.now_ns - s.since_ns >= self.settings.source_grace_s * _NS:
                why = f": {s.last_error}" if s.last_error else ""
                params: Params = {"kind": s.kind, "source": s.name}
                if s.last_error:
                    params["error"] = s.last_error
                self._want(
                    wanted,
                    Alarm(
                        f"source:{s.name}",
                        "source",
                        "alarm",
                        None,
                        f"{s.kind} source {s.name} disconnected{why}",
                        s.since_ns,
                        subjects=(s.name,),
                        code="source_disconnected_error" if s.last_error else "source_disconnected",
                        params=params,
                    ),
                )
        changed = self._reconcile(wanted, obs.now_ns)
        if {k: v.status + v.detail for k, v in statuses.items()} != {
            k: v.status + v.detail for k, v in self.status.items()
        }:
            changed = True
        self.status = statuses
        if changed:
            self.version += 1
        return changed

    # -- per kiln ---------------------------------------------------------------------------

    def _kiln(self, k: KilnObservation, now: int, wanted: dict[str, Alarm]) -> KilnStatus:
        s = self.settings
        mem = self._memory.setdefault(k.kiln, _KilnMemory())
        m = k.minute
        if m is not None:
            key = (m.start_ns, m.revision)
            if key != mem.minute_key:
                mem.minute_key, mem.minute_arrival_ns = key, now
            if m.valid and key != mem.valid_key:
                mem.valid_key, mem.valid_arrival_ns, mem.last_valid = key, now, m
        stale_ns = round(s.stale_after_s * _NS)
        valid_ref = mem.valid_arrival_ns if mem.valid_arrival_ns is not None else self.started_ns
        any_ref = mem.minute_arrival_ns if mem.minute_arrival_ns is not None else self.started_ns
        no_valid = now - valid_ref > stale_ns
        no_minute = now - any_ref > stale_ns
        if no_valid:
            why = "no minute arrives" if no_minute else "minutes arrive but none is valid"
            self._want(
                wanted,
                Alarm(
                    f"stale:{k.kiln}",
                    "stale",
                    "alarm",
                    k.kiln,
                    f"{k.name}: no new valid minute for {s.stale_after_s:g} s ({why})",
                    valid_ref + stale_ns,
                    data_time_ns=None if mem.last_valid is None else mem.last_valid.start_ns,
                    code="stale_no_minute" if no_minute else "stale_none_valid",
                    params={"kiln": k.name, "after_s": s.stale_after_s},
                ),
            )
        states: dict[str, list[str]] = {}
        for signal, word in k.qualities.items():
            if word in ANALYSER_STATES:
                states.setdefault(word, []).append(signal)
        for word, signals in states.items():
            self._want(
                wanted,
                Alarm(
                    f"{word}:{k.kiln}",
                    word,
                    "alarm" if word == "fault" else "warning",
                    k.kiln,
                    f"{k.name}: {word} on {_short(signals, k.kiln)}",
                    now,
                    subjects=tuple(sorted(signals)),
                    code=f"analyser_{word}",
                    params={"kiln": k.name, "signals": _short(signals, k.kiln)},
                ),
            )
        if mem.last_valid is not None:
            self._limits(k, mem.last_valid, now, wanted)
        if k.hour is not None and k.hour.completeness < s.completeness_min:
            self._want(
                wanted,
                Alarm(
                    f"completeness:{k.kiln}",
                    "completeness",
                    "warning",
                    k.kiln,
                    f"{k.name}: hourly completeness {k.hour.completeness:.0%} "
                    f"(below {s.completeness_min:.0%})",
                    now,
                    data_time_ns=k.hour.start_ns,
                    code="completeness_low",
                    params={"kiln": k.name, "completeness": k.hour.completeness, "min": s.completeness_min},
                ),
            )
        lag_s = None if m is None else (now - m.start_ns - MINUTE_NS) / _NS
        if no_minute and no_valid:
            status, detail = "stale", "no data"
        elif "fault" in states:
            status, detail = "fault", "fault"
        elif states:
            status = "maintenance"
            detail = "calibration" if "calibration" in states else "maintenance"
        elif no_valid:
            status, detail = "stale", "no valid minute"
        elif m is None:
            status, detail = "no_data", "no data yet"
        elif lag_s is not None and lag_s > s.catch_up_lag_s:
            status, detail = "catching_up", "catching up"
        elif not m.valid:
            status, detail = "invalid", "invalid minute"
        else:
            status, detail = "valid", "live"
        return KilnStatus(
            status,
            detail,
            None if lag_s is None else round(lag_s, 3),
            None if mem.minute_arrival_ns is None else round((now - mem.minute_arrival_ns) / _NS, 3),
            None if mem.valid_arrival_ns is None else round((now - mem.valid_arrival_ns) / _NS, 3),
        )

    def _limits(self, k: KilnObservation, m: MinuteSeen, now: int, wanted: dict[str, Alarm]) -> None:
        limits = self.settings.limits(k.kiln)
        checks = (
            ("intensity", m.intensity_kg_per_t, limits.intensity_kg_per_t, "kg CO2/t clinker", "intensity"),
            ("co2", m.co2_t_per_h, limits.co2_t_per_h, "t CO2/h", "CO2"),
        )
        for kind, value, limit, unit, label in checks:
            if value is None or limit is None:
                continue
            key = f"{kind}:{k.kiln}"
            # Once raised, the alarm holds until the value drops below the limit by the hysteresis.
            bar = limit * (1 - self.settings.hysteresis) if key in self.active else limit
            if value > bar:
                self._want(
                    wanted,
                    Alarm(
                        key,
                        kind,
                        "alarm",
                        k.kiln,
                        f"{k.name}: {label} above {limit:g} {unit}",
                        now,
                        data_time_ns=m.start_ns,
                        code=f"limit_{kind}",
                        params={"kiln": k.name, "limit": limit},
                    ),
                )

    # -- bookkeeping ------------------------------------------------------------------------

    @staticmethod
    def _want(wanted: dict[str, Alarm], alarm: Alarm) -> None:
        wanted[alarm.key] = alarm

    def _reconcile(self, wanted: dict[str, Alarm], now: int) -> bool:
        changed = False
        for key, new in wanted.items():
            old = self.active.get(key)
            if old is None:
                self.active[key] = new
                changed = True
            elif (old.message, old.subjects, old.data_time_ns) != (
                new.message,
                new.subjects,
                new.data_time_ns,
            ):
                old.message, old.subjects, old.data_time_ns = new.message, new.subjects, new.data_time_ns
                old.code, old.params = new.code, new.params
                changed = True
        for key in [k for k in self.active if k not in wanted]:
            alarm = self.active.pop(key)
            alarm.end_ns = max(now, alarm.start_ns)
            self.cleared.appendleft(alarm)
            changed = True
        return changed


def _short(signals: list[str], kiln: str) -> str:
    """Signal ids without the kiln prefix, for messages: ``stack.co2, stack.o2``."""
    return ", ".join(sorted(s.removeprefix(f"{kiln}.") for s in signals))
