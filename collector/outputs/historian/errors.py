"""How the InfluxDB writer sees the client's errors, and how long it waits before a retry.

Client errors are translated in one place (:func:`classify`)::

    WriteError
     +-- Retryable       connection error, timeout, 429, 5xx  -> back off, retry for ever
     +-- Malformed       400, 413, 422                        -> split the batch
     +-- ConfigRejected  401, 403, 404, other 4xx             -> stop and report
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import aiohttp
from influxdb_client.rest import ApiException


class WriteError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Retryable(WriteError):
    def __init__(
        self, message: str, reason: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.reason = reason  # metrics label: connection | http_429 | http_5xx
        self.retry_after = retry_after


class Malformed(WriteError):
    pass


class ConfigRejected(WriteError):
    pass


def classify(err: BaseException) -> WriteError | None:
    """The writer's view of a client error; None for errors that are not about the write."""
    if isinstance(err, ApiException) and err.status:
        status, message = int(err.status), str(getattr(err, "message", "") or err.reason or "")
        if status == 429 or status >= 500:
            reason = "http_429" if status == 429 else "http_5xx"
            return Retryable(f"HTTP {status}: {message}", reason, status, _retry_after(err.retry_after))
        if status in (400, 413, 422):
            return Malformed(message, status)
        return ConfigRejected(message, status)
    if isinstance(err, ApiException | aiohttp.ClientError | TimeoutError | OSError):
        return Retryable(f"{type(err).__name__}: {err}".strip(": "), "connection")
    return None


def _retry_after(value: object) -> float | None:
    """Seconds from a Retry-After header (delay in seconds or an HTTP date)."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
