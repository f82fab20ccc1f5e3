"""One supervisor for every source and for the InfluxDB writer.

The failure policy is the same for all of them:

- a :class:`ConfigurationError` (a file that cannot be read, a node id that cannot be parsed) is
  raised where the source is built, so the service fails at start-up with a message that names
  the source and the setting;
- any other error ends one run: it is logged once as the start of an outage, health shows it,
  and the run starts again after a capped exponential backoff with jitter.

:class:`Availability` is what a source reports while it runs (up, down); it logs each outage
once when it starts and once when it ends, with its length, and keeps the source's health entry
and its ``kilnwatch_source_connected`` gauge. The backoff starts again from its first delay once
the source is up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from collector.health import SourceHealth

log = logging.getLogger(__name__)


class ConfigurationError(ValueError):
    """A source's configuration cannot work; raised when it is built, never retried."""


class Failed(Exception):
    """One run of a source ended; ``logged``: the reason was already logged where it arose."""

    def __init__(self, reason: str, *, logged: bool = False) -> None:
        super().__init__(reason)
        self.logged = logged


def check_readable(owner: str, files: Mapping[str, str | None]) -> None:
    """ConfigurationError unless every set file (setting -> path) can be opened for reading."""
    for setting, path in files.items():
        if not path:
            continue
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as err:
            raise ConfigurationError(f"{owner}: {setting} {path} cannot be read: {err.strerror}") from err


@dataclass
class Backoff:
    """Capped exponential backoff [s]: ``initial``, doubling up to ``cap``, each delay shortened by
    a random fraction up to ``jitter`` so that many clients do not retry in step. A server's
    Retry-After replaces the delay (plus up to 10 %, at most 1 s)."""

    initial: float = 0.5
    cap: float = 10.0
    factor: float = 2.0
    jitter: float = 0.2
    _attempt: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next(self, retry_after: float | None = None) -> float:
        self._attempt += 1
        if retry_after is not None:
            return retry_after + self._rng.uniform(0.0, min(1.0, 0.1 * retry_after))
        base = min(self.cap, self.initial * self.factor ** min(self._attempt - 1, 60))
        return base * self._rng.uniform(1.0 - self.jitter, 1.0)

    def reset(self) -> None:
        self._attempt = 0


class Availability:
    """Up and down of one source or output: an outage is logged once when it starts (ERROR) and
    once when it ends (INFO, with its length); retries in between go to DEBUG. With ``health``,
    its entry follows; ``gauge`` is told 1 or 0."""

    def __init__(
        self,
        what: str,
        logger: logging.Logger = log,
        health: SourceHealth | None = None,
        gauge: Callable[[int], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.what = what
        self.health = health
        self.backoff = backoff or Backoff()
        self._log = logger
        self._gauge = gauge
        self._since: float | None = None
        if gauge is not None:
            gauge(0)

    @property
    def failing(self) -> bool:
        return self._since is not None

    def up(self) -> bool:
        """The source works (again); returns True when that ends an outage."""
        self.backoff.reset()
        if self.health is not None:
            self.health.mark_connected()
        if self._gauge is not None:
            self._gauge(1)
        if self._since is None:
            return False
        self._log.info("%s is back: recovered after %.1f s", self.what, time.monotonic() - self._since)
        self._since = None
        return True

    def down(self, reason: str, *, logged: bool = False) -> None:
        """The source stopped working; ``logged``: the reason was already logged where it arose."""
        if self.health is not None:
            if self.health.connected:
                self.health.mark_disconnected(reason)
            else:
                self.health.last_error = reason  # still down: keep the time the outage began
        if self._gauge is not None:
            self._gauge(0)
        if self._since is None:
            self._since = time.monotonic()
            if not logged:
                self._log.error("%s failed: %s; retrying with backoff", self.what, reason)
        else:
            self._log.debug("%s still failing: %s", self.what, reason)

    def failed(self, reason: str, *, logged: bool = False) -> None:
        """A run (or an attempt) failed: counted in health as an error, and the source is down."""
        if self.health is not None:
            self.health.mark_error(reason)
        self.down(reason, logged=logged)


class Supervised(Protocol):
    """What the supervisor runs: ``run`` until stopped, raising when a run fails."""

    name: str
    status: Availability

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


class Source(Supervised, Protocol):
    """An input: it hands ReadingBatches to its sink and reports its health."""

    health: SourceHealth


def describe_error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class Supervisor:
    """Runs one source (or output) for the life of the service; see the module's failure policy."""

    def __init__(self, target: Supervised) -> None:
        self.target = target
        self.name = target.name
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def run(self) -> None:
        status = self.target.status
        self._task, self._stopping = asyncio.current_task(), False
        try:
            while not self._stopping:
                try:
                    await self.target.run()
                    return  # stopped
                except ConfigurationError:
                    raise
                except Failed as err:
                    status.failed(str(err), logged=err.logged)
                except Exception as err:
                    status.failed(describe_error(err))
                await asyncio.sleep(status.backoff.next())
        finally:
            self._task = None

    async def quiesce(self) -> None:
        """Before a stop: a target that hands messages over with acknowledgements hands nothing new
        on (and keeps its link for the acknowledgements still due); other targets need nothing."""
        quiesce = getattr(self.target, "quiesce", None)
        if quiesce is not None:
            await quiesce()

    async def stop(self) -> None:
        """Stop the target and end ``run()``, also while it waits to run the target again."""
        self._stopping = True
        await self.target.stop()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])
