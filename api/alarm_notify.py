"""Delivers the queued alarm notifications: a webhook (Alertmanager's JSON) and, optionally, e-mail.

Messages wait in the store's ``notification`` table until a delivery succeeds, so neither a receiver
that is down nor a restart loses one. Each channel goes out in queue order; after a failure the head
message waits ``retry_min_s``, doubling per failure up to ``retry_max_s``, and nothing behind it
overtakes it. A message is marked delivered only after a 2xx answer: a receiver that took it but
whose answer was lost gets it again (at least once), with the same ``transition_id`` to drop it by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import smtplib
import time
import weakref
from email.message import EmailMessage
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge

from .alarm_settings import NotifySettings

log = logging.getLogger("kilnwatch.alarms.notify")
_NS = 1_000_000_000
#: Idle poll of the queue when nothing woke the notifier [s].
_POLL_S = 1.0


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, tuple[Counter, Gauge]] = weakref.WeakKeyDictionary()


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Gauge]:
    """One pair per registry: an app built twice on one registry does not register them twice."""
    if registry not in _METRICS:
        _METRICS[registry] = (
            Counter(
                "kilnwatch_alarm_notifications",
                "Alarm notification delivery attempts by channel and result (delivered, failed)",
                ["channel", "result"],
                registry=registry,
            ),
            Gauge(
                "kilnwatch_alarm_notifications_pending",
                "Alarm notifications not yet delivered",
                registry=registry,
            ),
        )
    return _METRICS[registry]


def channels(settings: NotifySettings) -> tuple[str, ...]:
    out = []
    if settings.webhook_url:
        out.append("webhook")
    if settings.smtp_host and settings.mail_to:
        out.append("email")
    return tuple(out)


def retry_delay_s(settings: NotifySettings, attempts: int) -> float:
    """Wait after the ``attempts``-th failure (1, 2, ...): exponential, capped."""
    return float(min(settings.retry_max_s, settings.retry_min_s * 2 ** min(attempts - 1, 30)))


class Notifier:
    """Runs while the API runs; ``wake()`` after queueing to deliver at once."""

    def __init__(self, store: Any, settings: NotifySettings, registry: CollectorRegistry) -> None:
        self.store = store
        self.settings = settings
        self.channels = channels(settings)
        self._wake = asyncio.Event()
        self.sent, self.queued = _metrics(registry)
        self._last_error_log: dict[str, float] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        if not self.channels:
            return
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    for channel in self.channels:
                        await self._deliver(session, channel)
                    self.queued.set(await asyncio.to_thread(self.store.pending))
                except Exception:
                    log.exception("delivering alarm notifications failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _POLL_S)
                self._wake.clear()

    async def _deliver(self, session: aiohttp.ClientSession, channel: str) -> None:
        for msg in await asyncio.to_thread(self.store.due, channel, time.time_ns()):
            try:
                if channel == "webhook":
                    await self._post(session, msg.id, msg.body)
                else:
                    await asyncio.to_thread(self._mail, msg.body)
            except Exception as err:
                attempts = msg.attempts + 1
                wait = retry_delay_s(self.settings, attempts)
                self.sent.labels(channel, "failed").inc()
                self._log_failure(channel, msg.id, attempts, wait, err)
                await asyncio.to_thread(
                    self.store.failed,
                    msg.id,
                    f"{type(err).__name__}: {err}",
                    time.time_ns() + round(wait * _NS),
                )
                return  # in order: nothing overtakes the head of the queue
            self.sent.labels(channel, "delivered").inc()
            await asyncio.to_thread(self.store.delivered, msg.id)

    async def _post(self, session: aiohttp.ClientSession, msg_id: int, body: dict[str, Any]) -> None:
        url = self.settings.webhook_url
        assert url is not None
        async with session.post(url, json=body, headers={"X-Kilnwatch-Notification": str(msg_id)}) as resp:
            if resp.status // 100 != 2:
                raise RuntimeError(f"HTTP {resp.status} from the webhook")

    def _mail(self, body: dict[str, Any]) -> None:
        s = self.settings
        alert = body["alerts"][0]
        msg = EmailMessage()
        msg["From"] = s.mail_from
        msg["To"] = ", ".join(s.mail_to)
        msg["Subject"] = f"[{body['status'].upper()}] {alert['annotations']['summary']}"
        lines = [f"{k}: {v}" for k, v in {**alert["labels"], **alert["annotations"]}.items()]
        lines += [f"startsAt: {alert['startsAt']}", f"endsAt: {alert['endsAt']}"]
        msg.set_content("\n".join(lines) + "\n")
        assert s.smtp_host is not None
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.webhook_timeout_s) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, os.environ.get(s.smtp_password_env or "", ""))
            smtp.send_message(msg)

    def _log_failure(self, channel: str, msg_id: int, attempts: int, wait: float, err: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log.get(channel, -60.0) >= 10.0 or attempts == 1:
            self._last_error_log[channel] = now
            log.warning(
                "alarm notification %d over %s not delivered (attempt %d): %s; next try in %.1f s",
                msg_id,
                channel,
                attempts,
                err,
                wait,
            )
