"""Per-installation MQTT client ids, and the modes of the data directory and the SQLite store."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest

from collector.file_modes import private_dir
from collector.sources.mqtt.source import MqttSource
from collector.store.local import LocalStore
from kilnwatch.config import parse_plant
from kilnwatch.demo import demo_plant
from kilnwatch.installation import INSTALLATION_ID_FILE, installation_id
from kilnwatch.service import Service
from kilnwatch.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_two_data_directories_give_two_ids_and_one_directory_keeps_its_id(tmp_path: Path) -> None:
    a, b = private_dir(tmp_path / "a"), private_dir(tmp_path / "b")
    first_a, first_b = installation_id(a), installation_id(b)
    assert first_a != first_b and len(first_a) == 12
    assert installation_id(a) == first_a  # a restart reads it back
    assert _mode(a / INSTALLATION_ID_FILE) == 0o600
    assert list(a.iterdir()) == [a / INSTALLATION_ID_FILE]  # no temporary file left behind


def test_processes_starting_together_agree_on_one_id(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        ids = pool.map(installation_id, [tmp_path] * 8, chunksize=1)
    assert len(set(ids)) == 1 and ids[0] == installation_id(tmp_path)


def test_a_damaged_id_file_is_an_error_not_replaced(tmp_path: Path) -> None:
    (tmp_path / INSTALLATION_ID_FILE).write_text("not an id\n")
    with pytest.raises(ValueError, match="does not hold an installation id"):
        installation_id(tmp_path)


def _service(data_dir: Path, **settings: object) -> Service:
    return Service(
        parse_plant(demo_plant(), "demo"),
        Settings(_env_file=None, data_dir=data_dir, **settings),  # type: ignore[arg-type, call-arg]
    )


def test_the_mqtt_client_id_carries_the_installation_id_across_restarts(tmp_path: Path) -> None:
    def client_ids(data_dir: Path) -> list[str]:
        service = _service(data_dir, instance_id="kw1")
        service.open()
        try:
            sources = [s.target for s in service.sources]
            return [s.client_id for s in sources if isinstance(s, MqttSource)]
        finally:
            service.pipeline.close()
            service.store.close()

    one, again, other = client_ids(tmp_path / "a"), client_ids(tmp_path / "a"), client_ids(tmp_path / "b")
    suffix = installation_id(tmp_path / "a")
    assert one == again == [f"kilnwatch-kw1-{suffix}-mqtt:cems"]
    assert other != one and other[0].startswith("kilnwatch-kw1-")


@pytest.mark.parametrize(("group", "dir_mode", "file_mode"), [(False, 0o700, 0o600), (True, 0o750, 0o640)])
def test_store_and_data_directory_modes(tmp_path: Path, group: bool, dir_mode: int, file_mode: int) -> None:
    data = tmp_path / "data"
    service = _service(data, data_group_readable=group)
    service.open()
    try:
        service.store.connection.execute("INSERT INTO signal(name) VALUES ('x')")  # WAL in use
        files = sorted(data.glob("kilnwatch-*.sqlite3*"))
        assert [f.suffix for f in files] == [".sqlite3", ".sqlite3-shm", ".sqlite3-wal"]
        assert {f.name: _mode(f) for f in files} == {f.name: file_mode for f in files}
        assert _mode(data) == dir_mode
    finally:
        service.pipeline.close()
        service.store.close()


def test_an_existing_store_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    LocalStore(path, ["x"]).close()
    path.chmod(0o644)
    private_dir(tmp_path)
    LocalStore(path, ["x"]).close()
    assert _mode(path) == 0o600
