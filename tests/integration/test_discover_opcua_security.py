"""``kilnwatch discover --opcua-settings`` against secure asyncua servers: policy, client certificate
with a password-protected key, the server's certificate checked against the trust directory, a user."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml

from kilnwatch.config import SourcesConfig
from kilnwatch.discover import opcua
from kilnwatch.discover.errors import Unreachable
from tests.integration.test_discover_opcua import discover as run_discover
from tests.integration.test_opcua_security import KEY_ENV, KEY_PASSWORD, NS, Pki, pki, start_server

pytestmark = pytest.mark.integration
__all__ = ["pki"]  # the module's fixture: one client and two server identities
PASSWORD_ENV = "KILNWATCH_TEST_DISCOVER_PASSWORD"


async def discover(*args: str) -> tuple[int, str]:
    return await run_discover(*args, env={**os.environ, KEY_ENV: KEY_PASSWORD, PASSWORD_ENV: "test-only-pw"})


async def test_a_secure_server_is_browsed_with_the_plant_files_settings(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "certificate": str(pki.client_cert),
        "private_key": str(pki.client_key),
        "private_key_password_env": KEY_ENV,
        "trust_dir": str(pki.trust_dir),
        "username": "operator",
        "password_env": PASSWORD_ENV,
    }
    settings_file = tmp_path / "server.yaml"
    settings_file.write_text(yaml.safe_dump(settings))
    trusted, impostor = await asyncio.gather(start_server(pki.trusted), start_server(pki.other))
    try:
        rc, err = await discover(
            f"opc.tcp://127.0.0.1:{trusted.port}", "--opcua-settings", str(settings_file),
            "--name", "dcs", "--output", str(tmp_path / "draft.yaml"),
        )  # fmt: skip
        # the same settings against a server whose certificate is not in trust_dir (in-process: faster)
        monkeypatch.setenv(KEY_ENV, KEY_PASSWORD)
        monkeypatch.setenv(PASSWORD_ENV, "test-only-pw")
        spec = SourcesConfig.model_validate(
            {"opcua": {"x": {"url": f"opc.tcp://127.0.0.1:{impostor.port}", **settings}}}
        ).opcua["x"]
        with pytest.raises(
            Unreachable,
            match=r"^cannot connect to opc\.tcp://127\.0\.0\.1:\d+: server certificate not trusted",
        ):
            await opcua.discover(f"opc.tcp://127.0.0.1:{impostor.port}", "x", None, 8, 100, 5.0, spec=spec)
    finally:
        for srv in (trusted, impostor):
            await asyncio.wait_for(srv.server.stop(), 5)
    assert rc == 0, err
    assert trusted.logins.attempts == ["operator"]
    assert impostor.logins.attempts == []  # nothing sent to a server that is not trusted
    text = (tmp_path / "draft.yaml").read_text()
    assert f"node: nsu={NS};s=kiln1.flow" in text  # found, no unit: written commented out
    draft = yaml.safe_load(text)
    assert draft["sources"]["opcua"]["dcs"] == {"url": f"opc.tcp://127.0.0.1:{trusted.port}", **settings}
    assert "test-only-pw" not in text and KEY_PASSWORD not in text


def test_a_literal_password_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kilnwatch.cli import main

    settings_file = tmp_path / "server.yaml"
    settings_file.write_text("username: operator\npassword: secret\n")
    assert main(["discover", "opc.tcp://127.0.0.1:1", "--opcua-settings", str(settings_file)]) == 2
    assert "give password_file or password_env, not password" in capsys.readouterr().err
