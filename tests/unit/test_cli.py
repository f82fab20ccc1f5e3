"""The ``kilnwatch`` command line: sub-commands, --version, help with defaults, KILNWATCH_LOG_LEVEL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib import metadata

import pytest

from kilnwatch import cli
from kilnwatch.settings import Settings

OWN = [
    "kilnwatch.service",
    "collector.sources.opcua.source",
    "collector.pipeline",
    "analytics.engine",
    "api.app",
    "simulators.opcua_server",
]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_report_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["report", "--help"], capsys)
    assert code == 0, err
    assert "--kiln" in out and "--from" in out and "--to" in out and "--output" in out


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"kilnwatch {metadata.version('kilnwatch')}"


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        pytest.param(["run", "--help"], ["(default: 60.0)", "(default: 6.0)", "(default: 48400)"], id="run"),
        pytest.param(["report", "--help"], ["(default: csv)", "(default: hourly)"], id="report"),
        pytest.param(["demo-config", "--help"], ["(default: 18830)"], id="demo-config"),
    ],
)
def test_help_shows_defaults(argv: list[str], shown: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(argv, capsys)
    assert code == 0
    flat = " ".join(out.split())  # argparse wraps lines
    for text in shown:
        assert text in flat
    assert "(default: None)" not in flat and "(default: False)" not in flat


@pytest.fixture
def restore_levels() -> Iterator[None]:
    names = [*cli.OWN_LOGGERS, "collector.mqtt.paho", "asyncua", "asyncua.client", "amqtt", "transitions", ""]
    levels = {n: logging.getLogger(n).level for n in names}
    yield
    for n, level in levels.items():
        logging.getLogger(n).setLevel(level)


@pytest.mark.usefixtures("restore_levels")
def test_log_level_debug_reaches_kilnwatchs_own_loggers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KILNWATCH_LOG_LEVEL", "debug")
    logging.getLogger().setLevel(logging.INFO)
    cli.configure_logging(Settings().log_level)
    for name in OWN:
        logging.getLogger(name).debug("detail from %s", name)
    assert [r.name for r in caplog.records if r.levelno == logging.DEBUG] == OWN
    # paho's per-packet logging and other libraries stay at INFO
    assert not logging.getLogger("collector.mqtt.paho").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("asyncua").isEnabledFor(logging.INFO)


@pytest.mark.usefixtures("restore_levels")
def test_log_level_warning_silences_info_of_own_loggers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KILNWATCH_LOG_LEVEL", "WARNING")
    cli.configure_logging(Settings().log_level)
    for name in OWN:
        logging.getLogger(name).info("routine")
        logging.getLogger(name).warning("attention")
    assert [(r.name, r.levelno) for r in caplog.records] == [(n, logging.WARNING) for n in OWN]


@pytest.mark.parametrize("level", ["LOUD", "WARN", "5", " info"])
def test_unknown_log_level_stops_run_with_a_clear_error(
    level: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KILNWATCH_LOG_LEVEL", level)
    code, _, err = run(["run"], capsys)
    assert code == 2
    assert f"KILNWATCH_LOG_LEVEL {level!r} is not a log level" in err
