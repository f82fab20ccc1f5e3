"""The alarm lifecycle of ISA-18.2 / IEC 62682 over the alarms an :class:`~api.alarms.AlarmBook` raises
and clears; pure logic, the clock passed in.

Each alarm occurrence is in one state:

``active_unacknowledged``   raised, nobody has acknowledged it (the page flashes it)
``active_acknowledged``     raised and acknowledged
``cleared_unacknowledged``  cleared by itself before anybody acknowledged it: stays listed until acknowledged
``shelved``                 hidden by an operator until an expiry, with a reason; the shelve belongs to the
                            alarm (its key), so a shelved alarm that clears and returns stays shelved.
                            At the expiry it returns unacknowledged when still active.
``suppressed``              suppressed by design: a kind listed in ``suppress_when_stopped`` while its kiln
                            is not operating (``is_stopped``); needs no acknowledgement

An occurrence cleared and acknowledged (or cleared while suppressed, and not shelved) is over and leaves.
Every change is a history event (raised, cleared, acknowledged, shelved, unshelved, suppressed, released)
and, for alarms that were annunciated, one notification in Alertmanager's webhook shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .alarm_settings import LifecycleSettings
from .alarms import Alarm, Params
from .timeparse import iso

_NS = 1_000_000_000
ACTIVE_UNACK = "active_unacknowledged"
ACTIVE_ACK = "active_acknowledged"
CLEARED_UNACK = "cleared_unacknowledged"
SHELVED = "shelved"
SUPPRESSED = "suppressed"
NORMAL = "normal"
#: Alertmanager's "no end yet".
_NO_END = "0001-01-01T00:00:00Z"

#: ``is_stopped(kiln_id, now_ns)``: the kiln is not operating.
StoppedHook = Callable[[str, int], bool]


class LifecycleError(Exception):
    """An operator action that does not apply (HTTP 404 with ``missing``, else 409)."""

    def __init__(self, detail: str, missing: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.missing = missing


@dataclass(slots=True)
class Occurrence:
    key: str
    kind: str
    severity: str
    kiln: str | None
    message: str
    code: str
    params: Params
    start_ns: int
    end_ns: int | None = None
    acked_ns: int | None = None
    acked_by: str | None = None
    shelved_ns: int | None = None
    shelved_until_ns: int | None = None
    shelved_by: str | None = None
    shelve_reason: str | None = None
    suppressed: bool = False
    #: A firing notification went out for it: its later transitions are notified too.
    notified: bool = False
    #: Read back at start-up and not yet seen again by the alarm book.
    restored: bool = False

    @property
    def active(self) -> bool:
        return self.end_ns is None

    def state(self, now_ns: int) -> str:
        if self.shelved_until_ns is not None and self.shelved_until_ns > now_ns:
            return SHELVED
        if self.suppressed and self.active:
            return SUPPRESSED
        if self.acked_ns is None:
            return ACTIVE_UNACK if self.active else CLEARED_UNACK
        return ACTIVE_ACK if self.active else NORMAL

    def annunciated(self, now_ns: int) -> bool:
        return self.state(now_ns) in (ACTIVE_UNACK, ACTIVE_ACK)

    def snapshot(self, now_ns: int) -> dict[str, Any]:
        return {
            "state": self.state(now_ns),
            "start": iso(self.start_ns),
            "end": None if self.end_ns is None else iso(self.end_ns),
            "acknowledged_by": self.acked_by,
            "shelved_until": None if self.shelved_until_ns is None else iso(self.shelved_until_ns),
            "shelved_by": self.shelved_by,
            "shelve_reason": self.shelve_reason,
        }

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("restored")
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Occurrence:
        known = {f for f in cls.__dataclass_fields__ if f != "restored"}
        return cls(**{k: v for k, v in row.items() if k in known}, restored=True)


#: A history event: (at_ns, key, kind, kiln, event, actor, detail).
Event = tuple[int, str, str, str | None, str, str | None, dict[str, Any]]


@dataclass
class Changes:
    """What one step changed: to be written in one transaction (AlarmStateStore.save)."""

    upserts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.events or self.notifications)


class AlarmLifecycle:
    """Occurrences by alarm key; every method returns the :class:`Changes` to persist."""

    def __init__(
        self,
        settings: LifecycleSettings,
        *,
        restored: Iterable[dict[str, Any]] = (),
        started_ns: int = 0,
        restore_grace_s: float = 0.0,
        channels: tuple[str, ...] = (),
        external_url: str = "",
    ) -> None:
        self.settings = settings
        self.occurrences: dict[str, Occurrence] = {}
        for row in restored:
            occ = Occurrence.from_row(row)
            self.occurrences[occ.key] = occ
        self.restore_until_ns = started_ns + round(restore_grace_s * _NS)
        self.channels = channels
        self.external_url = external_url
        self.version = 0

    # -- following the alarm book -----------------------------------------------------------

    def sync(self, active: dict[str, Alarm], now_ns: int, is_stopped: StoppedHook) -> Changes:
        """Follow the book's active alarms: raise, clear, suppress or release, expire shelves."""
        ch = Changes()
        stopped: dict[str, bool] = {}

        def kiln_stopped(kiln: str | None) -> bool:
            if kiln is None:
                return False
            if kiln not in stopped:
                stopped[kiln] = bool(is_stopped(kiln, now_ns))
            return stopped[kiln]

        for key, alarm in active.items():
            occ = self.occurrences.get(key)
            if occ is not None and occ.active:
                occ.restored = False
                if (occ.message, occ.params) != (alarm.message, alarm.params):
                    occ.message, occ.code, occ.params = alarm.message, alarm.code, alarm.params
                    self._touch(ch, occ)
                continue
            new = Occurrence(
                key, alarm.kind, alarm.severity, alarm.kiln, alarm.message, alarm.code, alarm.params, now_ns
            )
            if occ is not None and occ.shelved_until_ns is not None and occ.shelved_until_ns > now_ns:
                new.shelved_ns, new.shelved_until_ns = occ.shelved_ns, occ.shelved_until_ns
                new.shelved_by, new.shelve_reason = occ.shelved_by, occ.shelve_reason
            new.suppressed = self._suppressible(new) and kiln_stopped(new.kiln)
            self.occurrences[key] = new
            self._event(ch, new, now_ns, "raised", None, {"annunciated": new.annunciated(now_ns)})
        for occ in list(self.occurrences.values()):
            if occ.active and occ.key not in active:
                if occ.restored and now_ns < self.restore_until_ns:
                    continue
                occ.end_ns, occ.restored = now_ns, False
                self._event(ch, occ, now_ns, "cleared", None, {})
            elif occ.active and self._suppressible(occ):
                want = kiln_stopped(occ.kiln)
                if want != occ.suppressed:
                    occ.suppressed = want
                    self._event(ch, occ, now_ns, "suppressed" if want else "released", None, {})
            if occ.shelved_until_ns is not None and occ.shelved_until_ns <= now_ns:
                self._return_from_shelve(occ, now_ns)
                self._event(ch, occ, now_ns, "unshelved", None, {"expired": True})
        self._drop_finished(ch, now_ns)
        return ch

    # -- operator actions -------------------------------------------------------------------

    def acknowledge(
        self, key: str, actor: str, now_ns: int, reason: str = ""
    ) -> tuple[dict[str, Any], Changes]:
        """Acknowledge; returns the state before (for the audit trail) and the changes."""
        occ = self._get(key)
        before = occ.snapshot(now_ns)
        if occ.acked_ns is not None:
            raise LifecycleError(f"{key} was acknowledged by {occ.acked_by} at {iso(occ.acked_ns)}")
        if before["state"] not in (ACTIVE_UNACK, CLEARED_UNACK):
            raise LifecycleError(f"{key} is {before['state']}: nothing to acknowledge")
        occ.acked_ns, occ.acked_by = now_ns, actor
        ch = Changes()
        self._event(ch, occ, now_ns, "acknowledged", actor, {"reason": reason} if reason else {})
        self._drop_finished(ch, now_ns)
        return before, ch

    def shelve(
        self, key: str, actor: str, now_ns: int, duration_s: float, reason: str
    ) -> tuple[dict[str, Any], Changes]:
        occ = self._get(key)
        if not reason.strip():
            raise LifecycleError("shelving needs a reason")
        if not 0 < duration_s <= self.settings.max_shelve_s:
            raise LifecycleError(f"a shelve lasts more than 0 and at most {self.settings.max_shelve_s:g} s")
        before = occ.snapshot(now_ns)
        occ.shelved_ns, occ.shelved_until_ns = now_ns, now_ns + round(duration_s * _NS)
        occ.shelved_by, occ.shelve_reason = actor, reason.strip()
        ch = Changes()
        detail = {"until": iso(occ.shelved_until_ns), "reason": occ.shelve_reason}
        self._event(ch, occ, now_ns, "shelved", actor, detail)
        return before, ch

    def unshelve(self, key: str, actor: str, now_ns: int, reason: str = "") -> tuple[dict[str, Any], Changes]:
        occ = self._get(key)
        before = occ.snapshot(now_ns)
        if before["state"] != SHELVED:
            raise LifecycleError(f"{key} is not shelved")
        self._return_from_shelve(occ, now_ns)
        ch = Changes()
        self._event(ch, occ, now_ns, "unshelved", actor, {"reason": reason} if reason else {})
        self._drop_finished(ch, now_ns)
        return before, ch

    # -- reading ----------------------------------------------------------------------------

    def by_state(self, now_ns: int) -> dict[str, list[Occurrence]]:
        out: dict[str, list[Occurrence]] = {}
        for occ in sorted(self.occurrences.values(), key=lambda o: o.start_ns):
            out.setdefault(occ.state(now_ns), []).append(occ)
        return out

    # -- inner workings ---------------------------------------------------------------------

    def _get(self, key: str) -> Occurrence:
        occ = self.occurrences.get(key)
        if occ is None:
            raise LifecycleError(f"no alarm {key!r} is active or waiting for acknowledgement", missing=True)
        return occ

    def _suppressible(self, occ: Occurrence) -> bool:
        return occ.kiln is not None and occ.kind in self.settings.suppress_when_stopped

    @staticmethod
    def _return_from_shelve(occ: Occurrence, now_ns: int) -> None:
        """Still active: it returns unacknowledged, to be seen again; cleared meanwhile: it is over."""
        occ.shelved_ns = occ.shelved_until_ns = None
        occ.shelved_by = occ.shelve_reason = None
        occ.acked_ns, occ.acked_by = (None, None) if occ.active else (now_ns, None)

    def _touch(self, ch: Changes, occ: Occurrence) -> None:
        ch.upserts[occ.key] = occ.to_row()
        self.version += 1

    def _drop_finished(self, ch: Changes, now_ns: int) -> None:
        for occ in list(self.occurrences.values()):
            over = occ.state(now_ns) == NORMAL or (
                not occ.active and occ.suppressed and occ.state(now_ns) != SHELVED
            )
            if over:
                del self.occurrences[occ.key]
                ch.upserts.pop(occ.key, None)
                ch.deletes.append(occ.key)
                self.version += 1

    def _event(
        self, ch: Changes, occ: Occurrence, now_ns: int, event: str, actor: str | None, detail: dict[str, Any]
    ) -> None:
        state = occ.state(now_ns)
        ch.events.append((now_ns, occ.key, occ.kind, occ.kiln, event, actor, {**detail, "state": state}))
        firing = occ.annunciated(now_ns)
        if self.channels and (firing or occ.notified):
            body = self.alertmanager(occ, now_ns, event, actor)
            ch.notifications.extend((channel, body) for channel in self.channels)
            occ.notified = occ.notified or firing
        self._touch(ch, occ)

    def alertmanager(self, occ: Occurrence, now_ns: int, event: str, actor: str | None) -> dict[str, Any]:
        """One transition as Alertmanager's webhook body (version 4) with one alert."""
        status = "firing" if occ.annunciated(now_ns) else "resolved"
        labels = {"alertname": f"kilnwatch_{occ.kind}", "alarm_id": occ.key, "severity": occ.severity}
        if occ.kiln is not None:
            labels["kiln"] = occ.kiln
        annotations = {
            "summary": occ.message,
            "state": occ.state(now_ns),
            "transition": event,
            # unique per transition: a receiver may drop a repeat delivery by it
            "transition_id": f"{occ.key}@{occ.start_ns}/{event}@{now_ns}",
        }
        if actor:
            annotations["actor"] = actor
        if occ.shelve_reason:
            annotations["shelve_reason"] = occ.shelve_reason
        fingerprint = hashlib.sha256(f"{occ.key}@{occ.start_ns}".encode()).hexdigest()[:16]
        end = occ.end_ns if occ.end_ns is not None else (now_ns if status == "resolved" else None)
        alert = {
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": iso(occ.start_ns),
            "endsAt": _NO_END if end is None else iso(end),
            "generatorURL": f"{self.external_url.rstrip('/')}/#alarms" if self.external_url else "",
            "fingerprint": fingerprint,
        }
        return {
            "version": "4",
            "groupKey": f'{{}}:{{alarm_id="{occ.key}"}}',
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "kilnwatch",
            "groupLabels": {"alarm_id": occ.key},
            "commonLabels": labels,
            "commonAnnotations": annotations,
            "externalURL": self.external_url,
            "alerts": [alert],
        }
