"""An MQTT source's paho session in a worker process, so that paho's packet handling does not
share kilnwatch's GIL with decoding, storage and the API (decision 0007).

The worker only receives and acknowledges. Its inbox is bounded (``inbox_max_bytes``): when
kilnwatch does not keep up, the pipe fills, the flusher waits, the inbox fills and paho's thread
waits, so the broker holds the rest. Over one pipe it sends, in order:

    ("messages", [Incoming, ...])        what arrived during one batch window
    ("down", reason) / ("granted", refused, downgraded)
    ("log", level, text)                 paho's log records

and it receives ``("ack", [AckToken, ...])`` and ``("stop",)``. It ends when told to stop or when
kilnwatch's end of the pipe closes (kilnwatch is gone). :class:`WorkerLink` is kilnwatch's end:
it starts the worker, reads the pipe on the event loop, and starts a new worker (after
``reconnect_min_s``) when one dies; messages the dead worker took but never acknowledged are
redelivered by the broker to the new one (same client id, persistent session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from .inbox import Inbox
from .session import AckToken, Incoming, PahoSession, paho_log
from .spec import MqttBrokerSpec

log = logging.getLogger(__name__)

#: Generations of successive workers never overlap (see ``PahoSession.first_generation``).
GENERATIONS_PER_WORKER = 1 << 32
STOP_TIMEOUT_S = 10.0


# -- the worker process --------------------------------------------------------------------


class _PipeEvents:
    """Session events of the worker: control events at once, messages batched by the flusher."""

    def __init__(self, conn: Connection, inbox_max_bytes: int) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.inbox = Inbox(inbox_max_bytes)
        self.arrived = threading.Event()

    def send(self, item: tuple[Any, ...]) -> None:
        with self.send_lock, contextlib.suppress(OSError):  # kilnwatch is gone: the worker ends
            self.conn.send(item)

    def message(self, item: Incoming) -> None:
        if self.inbox.put(item):  # waits while the inbox is full
            self.arrived.set()

    def down(self, reason: str) -> None:
        self.send(("down", reason))

    def granted(self, refused: list[str], downgraded: list[str]) -> None:
        self.send(("granted", refused, downgraded))

    def flush_forever(self, window_s: float, most: int) -> None:
        while True:
            self.arrived.wait()
            self.arrived.clear()
            if window_s:
                time.sleep(window_s)
            while items := self.inbox.take(most):
                self.send(("messages", items))  # waits while kilnwatch does not read


class _PipeLogHandler(logging.Handler):
    def __init__(self, events: _PipeEvents) -> None:
        super().__init__()
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.send(("log", record.levelno, record.getMessage()))


def worker_main(
    spec: MqttBrokerSpec,
    client_id: str,
    patterns: Sequence[str],
    conn: Connection,
    first_generation: int,
    log_level: int,
) -> None:
    """Entry point of the worker process; ``log_level``: that of paho's logger in kilnwatch."""
    # Ctrl-C reaches the whole process group, systemd may signal every process of the unit:
    # kilnwatch stops its workers itself, after the last commit, so they wait for that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    events = _PipeEvents(conn, spec.inbox_max_bytes)
    paho_log.addHandler(_PipeLogHandler(events))
    paho_log.setLevel(log_level)
    paho_log.propagate = False
    session = PahoSession(spec, client_id, patterns, events, first_generation)
    try:
        session.start()
    except Exception as exc:  # e.g. a TLS file that cannot be read: say why, then end
        events.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    flusher = threading.Thread(
        target=events.flush_forever, args=(spec.batch_window_ms / 1000, spec.max_batch_messages), daemon=True
    )
    flusher.start()
    try:
        while True:
            command = conn.recv()
            if command[0] == "ack":
                session.ack(command[1])
            elif command[0] == "stop":
                break
    except (EOFError, OSError):
        pass  # kilnwatch is gone
    finally:
        events.inbox.close()  # paho's thread may wait for space: free it, so that it can stop
        session.close()


# -- kilnwatch's end -----------------------------------------------------------------------


def _add_reader(
    loop: asyncio.AbstractEventLoop, conn: Connection, callback: Callable[[Connection], None]
) -> None:
    """``loop.add_reader`` for a pipe read with ``conn.recv()``, which needs a blocking descriptor.

    uvloop makes the descriptor non-blocking; a message then arriving in pieces (a burst of a
    backlog) raises BlockingIOError in ``recv()`` and looked like a lost worker: it was replaced
    every second or two and the broker sent its unacknowledged messages again.
    """
    loop.add_reader(conn.fileno(), callback, conn)
    os.set_blocking(conn.fileno(), True)


class WorkerLink:
    """Runs a :class:`PahoSession` in a worker process and relays its events on the event loop.

    ``on_messages``, ``on_down``, ``on_granted`` are called on the loop; ``on_failed`` when the
    worker could not start its session (a configuration error: no restart). When ``on_messages``
    returns False (kilnwatch's inbox is full), the pipe is not read until :meth:`resume`.
    """

    def __init__(
        self,
        name: str,
        spec: MqttBrokerSpec,
        client_id: str,
        patterns: Sequence[str],
        *,
        on_messages: Callable[[list[Incoming]], bool],
        on_down: Callable[[str], None],
        on_granted: Callable[[list[str], list[str]], None],
        on_failed: Callable[[str], None],
    ) -> None:
        self.name = name
        self.spec = spec
        self.client_id = client_id
        self.patterns = tuple(patterns)
        self.on_messages = on_messages
        self.on_down = on_down
        self.on_granted = on_granted
        self.on_failed = on_failed
        self._ctx = multiprocessing.get_context("spawn")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._workers_started = 0
        self._closing = False
        self._restart: asyncio.TimerHandle | None = None
        self._replacing: asyncio.Task[None] | None = None
        self._paused = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._spawn()

    def ack(self, acks: Sequence[AckToken]) -> None:
        conn = self._conn
        if conn is None:
            return  # the worker is gone: the broker redelivers to the next one
        with contextlib.suppress(OSError):
            conn.send(("ack", list(acks)))

    def resume(self) -> None:
        """Read the pipe again after ``on_messages`` returned False."""
        if self._paused and self._conn is not None and self._loop is not None:
            self._paused = False
            _add_reader(self._loop, self._conn, self._readable)

    async def close(self) -> None:
        """Stop the worker (it disconnects cleanly) and wait for it."""
        self._closing = True
        self.resume()  # a worker waiting to send must get rid of it to see the stop and end
        if self._restart is not None:
            self._restart.cancel()
        if self._replacing is not None:
            self._replacing.cancel()
        conn, proc = self._conn, self._process
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        if proc is not None:
            await asyncio.to_thread(proc.join, STOP_TIMEOUT_S)
            if proc.is_alive():
                log.warning("MQTT worker of %s did not stop within %.0f s; killed", self.name, STOP_TIMEOUT_S)
                proc.kill()
                await asyncio.to_thread(proc.join)
        self._detach()

    def _spawn(self) -> None:
        self._restart = None
        parent, child = self._ctx.Pipe()
        first_generation = self._workers_started * GENERATIONS_PER_WORKER
        self._workers_started += 1
        log_level = paho_log.getEffectiveLevel()
        proc = self._ctx.Process(
            target=worker_main,
            args=(self.spec, self.client_id, self.patterns, child, first_generation, log_level),
            name=f"kilnwatch-{self.name}",
            daemon=True,
        )
        # SIG_IGN survives exec: the worker ignores a terminal's Ctrl-C from its first instruction
        # on, also while it imports, not only once worker_main runs.
        on_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if on_main_thread else None
        try:
            proc.start()
        finally:
            if on_main_thread:
                signal.signal(signal.SIGINT, previous or signal.SIG_DFL)
        child.close()
        self._conn, self._process, self._paused = parent, proc, False
        assert self._loop is not None
        _add_reader(self._loop, parent, self._readable)

    def _readable(self, conn: Connection) -> None:
        try:
            while not self._paused and conn.poll():
                self._dispatch(conn.recv())
        except (EOFError, OSError):
            self._lost(conn)

    def _dispatch(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "messages":
            full = not self.on_messages(event[1])
            if full and not self._closing and self._conn is not None and self._loop is not None:
                self._paused = True  # back-pressure: the worker's sends wait, then its inbox fills
                self._loop.remove_reader(self._conn.fileno())
        elif kind == "down":
            self.on_down(event[1])
        elif kind == "granted":
            self.on_granted(event[1], event[2])
        elif kind == "log":
            paho_log.log(event[1], "%s", event[2])
        elif kind == "failed":
            self._closing = True
            self.on_failed(event[1])

    def _lost(self, conn: Connection) -> None:
        if conn is not self._conn:
            return
        proc = self._process
        self._detach()
        if not self._closing:
            assert self._loop is not None
            self._replacing = self._loop.create_task(self._replace(proc))

    async def _replace(self, proc: multiprocessing.process.BaseProcess | None) -> None:
        """Report how the worker ended (its pipe can close a moment before it is reaped), then
        start the next one after ``reconnect_min_s``."""
        if proc is not None:
            await asyncio.to_thread(proc.join, STOP_TIMEOUT_S)
        code = None if proc is None else proc.exitcode
        ended = "ended" if code is None else f"ended with exit code {code}"
        if self._closing:
            return
        self.on_down(f"MQTT worker process {ended}; starting a new one")
        assert self._loop is not None
        self._restart = self._loop.call_later(self.spec.reconnect_min_s, self._spawn)

    def _detach(self) -> None:
        conn, self._conn, self._process = self._conn, None, None
        if conn is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(conn.fileno())
        conn.close()
