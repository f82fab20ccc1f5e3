"""Headless Chromium (Debian's /usr/bin/chromium and /usr/bin/chromedriver) driven by selenium."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.wait import WebDriverWait

from api.security.tokens import Role, hash_line, new_token
from tests.fixtures.loop_thread import LoopThread
from tests.fixtures.ports import free_port
from tests.fixtures.service import RunningService

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Quiet, reproducible, offline: no first-run UI, no background traffic to the vendor's servers.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1920,1080",
    "--force-device-scale-factor=1",
)
#: Bound of the browser's quit [s]; past it chromedriver and chromium are killed.
QUIT_TIMEOUT_S = 15.0
#: Where screenshots land besides the test's tmp_path (ignored by git).
TEST_OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


#: The browser tests run with API authentication on: this viewer token is configured for every
#: service they start, and each browser signs in with it once, through the page's form.
TOKEN = new_token()
#: How long the page may take to show its sign-in form, and to hide it once the token is accepted [s].
SIGN_IN_TIMEOUT_S = 20.0
SIGNED_IN = """
const box = document.getElementById('login');
return box !== null && box.hidden && document.getElementById('connection').dataset.state !== 'signin';
"""


class Page:
    """A browser and the log entries read from it so far (reading a Chrome log empties it)."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        self.console: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []  # (url, url of the document that asked for it)
        self.signed_in = False

    def open(self, url: str, token: str = TOKEN) -> None:
        """Load the page; the first time, sign in through its form as a person would (the cookie
        it then holds is the browser's for every later page of 127.0.0.1)."""
        self.driver.get(url)
        if self.signed_in:
            return
        wait = WebDriverWait(self.driver, SIGN_IN_TIMEOUT_S, poll_frequency=0.1)
        field = wait.until(EC.visibility_of_element_located((By.ID, "login-token")))
        field.send_keys(token)
        self.driver.find_element(By.ID, "login-submit").click()
        wait.until(lambda d: d.execute_script(SIGNED_IN))
        self.signed_in = True

    def collect_logs(self) -> None:
        self.console += self.driver.get_log("browser")
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                params = message["params"]
                self.requests.append((params["request"]["url"], params.get("documentURL", "")))

    def console_errors(self) -> list[dict[str, Any]]:
        self.collect_logs()
        return [e for e in self.console if e["level"] == "SEVERE"]

    def foreign_requests(self, origin: str) -> list[str]:
        """Requests of our page to anything but its origin, and any request to another web host
        (the browser's own chrome:// pages before the first navigation are not the page's)."""
        self.collect_logs()
        own = origin.rstrip("/") + "/"
        return [
            url
            for url, document in self.requests
            if not url.startswith(own)
            and (document.startswith(own) or url.startswith(("http:", "https:", "ws:", "wss:")))
        ]

    def screenshot(self, tmp_path: Path, name: str) -> Path:
        path = tmp_path / name
        self.driver.save_screenshot(str(path))
        TEST_OUTPUT.mkdir(exist_ok=True)
        shutil.copyfile(path, TEST_OUTPUT / name)
        return path


@pytest.fixture
def start_service(
    start_service: Callable[..., RunningService], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., RunningService]:
    """The shared fixture's services, with API authentication on: one viewer token (TOKEN)."""
    monkeypatch.setenv("KILNWATCH_API_TOKENS", hash_line("browser-tests", Role.VIEWER, TOKEN))

    def start(**kw: Any) -> RunningService:
        svc = start_service(**kw)
        svc.headers["Authorization"] = f"Bearer {TOKEN}"
        return svc

    return start


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # A process group of its own (chromedriver and its browser): what a stuck quit leaves is killed.
    service = DriverService(executable_path=CHROMEDRIVER, popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(options=options, service=service)
    # A 1080p control-room screen, whatever the headless window's decorations take.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.execute_cdp_cmd(
        "Emulation.setTimezoneOverride", {"timezoneId": "UTC"}
    )  # times as the tests expect
    try:
        yield Page(driver)
    finally:
        quit_within(driver, service, QUIT_TIMEOUT_S)


def quit_within(driver: webdriver.Chrome, service: DriverService, timeout_s: float) -> None:
    """``driver.quit()`` for at most ``timeout_s`` (selenium's own waits add up to minutes); past
    that, SIGKILL to chromedriver's process group (chromedriver and the browser it started)."""
    quitter = threading.Thread(target=driver.quit, name="chromium-quit", daemon=True)
    quitter.start()
    quitter.join(timeout_s)
    process = service.process
    if process is None or not (quitter.is_alive() or process.poll() is None):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


class BreakableLink:
    """A TCP relay on 127.0.0.1 between the browser and the service: ``cut()`` drops every connection
    and refuses new ones, as a network break does; ``mend()`` lets connections through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.loop = LoopThread("link")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.mend()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            dst.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    def cut(self) -> None:
        self.loop.run(self._stop())

    def mend(self) -> None:
        self.loop.run(self._start())

    def close(self) -> None:
        self.cut()
        self.loop.close()


@pytest.fixture
def breakable_link() -> Iterator[Callable[[int], BreakableLink]]:
    links: list[BreakableLink] = []

    def make(target_port: int) -> BreakableLink:
        links.append(BreakableLink(target_port))
        return links[-1]

    yield make
    for link in links:
        link.close()
