"""Alarm notifications reach a real HTTP receiver on 127.0.0.1 in Alertmanager's webhook shape, each
transition exactly once, also when the receiver was down for a while: kilnwatch retries with backoff and
keeps the messages in its store until they are delivered, in order.

The receiver is down for ``DOWN_S`` (a minute) with the retry backoff capped at ``RETRY_MAX_S``, so
a dozen failed attempts happen while it is down."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from api.alarm_settings import LifecycleSettings, NotifySettings
from api.page_config import AlarmSettings
from api.security.tokens import Role
from tests.fixtures.ports import free_port
from tests.fixtures.service import wait_for

from .api_server import serve_api

pytestmark = pytest.mark.integration
WAIT_S = 60.0
#: How long the receiver stays down [s].
DOWN_S = 60.0
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


class Receiver:
    """Collects the JSON bodies POSTed to it; can be stopped and started again on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        bodies, headers = self.bodies, self.headers

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                bodies.append(json.loads(self.rfile.read(length)))
                headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        assert not self._thread.is_alive()
        self._server = None

    def transitions(self) -> list[tuple[str, str, str]]:
        return [
            (b["alerts"][0]["labels"]["alarm_id"], b["alerts"][0]["annotations"]["transition"], b["status"])
            for b in self.bodies
        ]


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    r.start()
    try:
        yield r
    finally:
        if r._server is not None:
            r.stop()


def test_each_transition_reaches_the_webhook_once_also_after_the_receiver_was_down(tmp_path: Path) -> None:
    with receiver() as hook:
        alarms = AlarmSettings(
            stale_after_s=1e6,
            source_grace_s=0,
            evaluate_every_s=0.2,
            lifecycle=LifecycleSettings(restore_grace_s=0.0),
            notify=NotifySettings(
                webhook_url=f"http://127.0.0.1:{hook.port}/alerts",
                external_url="http://kilnwatch.example",
                retry_min_s=RETRY_MIN_S,
                retry_max_s=RETRY_MAX_S,
                webhook_timeout_s=5,
            ),
        )
        with serve_api(tmp_path / "s.sqlite3", alarms) as api:
            store = api.ctx.alarm_store
            api.health.source("opcua:a", "opcua").mark_disconnected("connection refused")
            wait_for(lambda: len(hook.bodies) == 1, WAIT_S)
            first = hook.bodies[0]
            assert (
                first["version"] == "4" and first["status"] == "firing" and first["receiver"] == "kilnwatch"
            )
            alert = first["alerts"][0]
            assert alert["labels"] == {
                "alertname": "kilnwatch_source",
                "alarm_id": "source:opcua:a",
                "severity": "alarm",
            }
            assert alert["annotations"]["summary"] == "opcua source opcua:a disconnected: connection refused"
            assert alert["annotations"]["state"] == "active_unacknowledged"
            assert alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["startsAt"].endswith("Z")
            assert alert["generatorURL"] == "http://kilnwatch.example/#alarms"
            assert len(alert["fingerprint"]) == 16

            hook.stop()
            went_down = time.monotonic()
            assert api.post("/api/v1/alarms/source:opcua:a/acknowledge", Role.OPERATOR).status_code == 200
            api.health.source("opcua:a", "opcua").mark_connected()
            api.health.source("opcua:b", "opcua").mark_disconnected("timeout")
            # kilnwatch keeps trying: the head message fails again and again, none is lost
            wait_for(
                lambda: any(n.attempts >= 3 and n.delivered_ns is None for n in store.notifications()), WAIT_S
            )
            down = wait_for(lambda: store.pending() == 3 and store.pending(), WAIT_S)
            assert down == 3
            head = next(n for n in store.notifications() if n.delivered_ns is None)
            assert head.last_error and "Connect" in head.last_error
            wait_for(lambda: time.monotonic() - went_down >= DOWN_S, DOWN_S + WAIT_S)  # the downtime itself

            hook.start()
            wait_for(lambda: store.pending() == 0, WAIT_S)
            # one more transition after the backlog: any repeat of the backlog would arrive before it
            assert api.post("/api/v1/alarms/source:opcua:b/acknowledge", Role.OPERATOR).status_code == 200
            wait_for(lambda: len(hook.bodies) >= 5, WAIT_S)
            got = hook.transitions()
            assert len(got) == 5
            assert [t for t in got if t[0] == "source:opcua:a"] == [
                ("source:opcua:a", "raised", "firing"),
                ("source:opcua:a", "acknowledged", "firing"),
                ("source:opcua:a", "cleared", "resolved"),
            ]
            assert [t for t in got if t[0] == "source:opcua:b"] == [
                ("source:opcua:b", "raised", "firing"),
                ("source:opcua:b", "acknowledged", "firing"),
            ]
            ids = [b["alerts"][0]["annotations"]["transition_id"] for b in hook.bodies]
            assert len(set(ids)) == len(ids)
            assert [h["X-Kilnwatch-Notification"] for h in hook.headers] == ["1", "2", "3", "4", "5"]
            resolved = next(b for b in hook.bodies if b["status"] == "resolved")["alerts"][0]
            assert resolved["endsAt"] != "0001-01-01T00:00:00Z"
            assert hook.bodies[1]["alerts"][0]["annotations"]["actor"] == "operator-user"
            metrics = api.get("/metrics", Role.METRICS).text
            assert 'kilnwatch_alarm_notifications_total{channel="webhook",result="failed"}' in metrics


@contextmanager
def smtp_receiver() -> Iterator[tuple[int, list[tuple[list[str], bytes]]]]:
    """The standard library's (Python 3.11) SMTP server on 127.0.0.1 in a thread: (port, messages)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        smtpd = pytest.importorskip("smtpd")
        import asyncore

    got: list[tuple[list[str], bytes]] = []

    class Server(smtpd.SMTPServer):  # type: ignore[misc,name-defined]
        def process_message(
            self, peer: Any, mailfrom: str, rcpttos: list[str], data: bytes, **kw: Any
        ) -> None:
            got.append((rcpttos, data))

    port = free_port()
    server = Server(("127.0.0.1", port), None, decode_data=False)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            asyncore.loop(timeout=0.1, count=1)

    thread = threading.Thread(target=serve, name="smtp", daemon=True)
    thread.start()
    try:
        yield port, got
    finally:
        stop.set()
        thread.join(10)
        server.close()
        assert not thread.is_alive()


def test_each_transition_is_mailed_when_smtp_is_configured(tmp_path: Path) -> None:
    with smtp_receiver() as (port, mails):
        alarms = AlarmSettings(
            stale_after_s=1e6,
            source_grace_s=0,
            evaluate_every_s=0.2,
            lifecycle=LifecycleSettings(restore_grace_s=0.0),
            notify=NotifySettings(
                smtp_host="127.0.0.1",
                smtp_port=port,
                mail_to=["shift@plant.example"],
                retry_max_s=RETRY_MAX_S,
            ),
        )
        with serve_api(tmp_path / "s.sqlite3", alarms) as api:
            api.health.source("opcua:a", "opcua").mark_disconnected("connection refused")
            wait_for(lambda: len(mails) == 1, WAIT_S)
            assert api.post("/api/v1/alarms/source:opcua:a/acknowledge", Role.OPERATOR).status_code == 200
            wait_for(lambda: len(mails) == 2, WAIT_S)
    rcpt, data = mails[0]
    assert rcpt == ["shift@plant.example"]
    text = data.decode()
    assert "Subject: [FIRING] opcua source opcua:a disconnected: connection refused" in text
    assert "transition: raised" in text and "alarm_id: source:opcua:a" in text
    assert (
        "transition: acknowledged" in mails[1][1].decode() and "actor: operator-user" in mails[1][1].decode()
    )
