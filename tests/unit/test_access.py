"""API tokens and the access policy the wiring builds: hash lines, the loopback rule, allowed hosts,
``kilnwatch token create``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from api.security.settings import AuthSettings
from api.security.tokens import Role, TokenStore, parse_lines
from kilnwatch.access import AccessError, build_auth, is_loopback
from kilnwatch.cli import main
from kilnwatch.config import load_plant_file
from kilnwatch.demo import demo_plant
from kilnwatch.settings import Settings

LINE = "ops:viewer:" + "ab" * 32


@pytest.fixture(autouse=True)
def _no_tokens_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KILNWATCH_API_TOKENS", "KILNWATCH_ALLOWED_HOSTS", "KILNWATCH_INSECURE_NO_AUTH"):
        monkeypatch.delenv(name, raising=False)


def test_token_create_prints_the_token_once_then_its_hash_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--role", "viewer", "--name", "control-room"]) == 0
    out, err = capsys.readouterr()
    token, line = out.splitlines()
    assert token.startswith("kw_") and len(token) == 3 + 43  # 32 random bytes, URL-safe base64
    assert line == f"control-room:viewer:{hashlib.sha256(token.encode()).hexdigest()}"
    assert "not shown again" in err
    [entry] = parse_lines(line, "stdout")
    assert TokenStore([entry]).find(token) == entry
    assert TokenStore([entry]).find(token + "x") is None
    assert main(["token", "create", "--role", "viewer", "--name", "control-room"]) == 0
    assert capsys.readouterr().out.splitlines()[0] != token  # random each time


def test_token_create_refuses_a_bad_name_or_role(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--role", "admin", "--name", "a:b"]) == 2
    assert "token name 'a:b'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["token", "create", "--role", "root", "--name", "x"])


def test_hash_lines_errors_name_the_line_and_never_echo_a_token() -> None:
    text = f"# comment\n{LINE}\nbroken\nx:root:{'0' * 64}\nbob:admin:kw_notahash\n\n"
    with pytest.raises(ValueError) as err:
        parse_lines(text, "tokens.txt")
    assert err.value.args[0].splitlines() == [
        "tokens.txt:3: expected name:role:sha256hex",
        "tokens.txt:4: x: role 'root' is not one of ['metrics', 'viewer', 'operator', 'admin']",
        "tokens.txt:5: bob: the hash must be 64 hex digits (SHA-256), not a token",
    ]
    assert "kw_notahash" not in str(err.value)
    assert [e.name for e in parse_lines(f"{LINE}, m:metrics:{'cd' * 32}", "env")] == ["ops", "m"]


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert Role.VIEWER.allows(Role.METRICS) and not Role.METRICS.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR)


def test_loopback_without_tokens_is_open_elsewhere_it_is_refused() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        assert not build_auth(AuthSettings(), Settings(host=host)).enabled
    for host in ("0.0.0.0", "::", "192.168.1.10", "kiln-server"):
        assert not is_loopback(host)
        with pytest.raises(AccessError, match=f"refusing to serve the API on {host} without API tokens"):
            build_auth(AuthSettings(), Settings(host=host))
        config = build_auth(AuthSettings(), Settings(host=host, insecure_no_auth=True))
        assert not config.enabled
    with_token = build_auth(AuthSettings(), Settings(host="0.0.0.0", api_tokens=LINE))
    assert with_token.enabled and [e.name for e in with_token.tokens.entries] == ["ops"]


def test_allowed_hosts_are_loopback_the_bind_address_and_the_configured_ones() -> None:
    auth = AuthSettings(allowed_hosts=["kilnwatch.plant.example"])
    config = build_auth(auth, Settings(host="192.168.1.10", api_tokens=LINE, allowed_hosts="a.example, b"))
    assert config.allowed_hosts == (
        "localhost",
        "127.0.0.1",
        "[::1]",
        "kilnwatch.plant.example",
        "a.example",
        "b",
        "192.168.1.10",
    )
    wildcard = build_auth(AuthSettings(), Settings(host="0.0.0.0", api_tokens=LINE))
    assert wildcard.allowed_hosts == ("localhost", "127.0.0.1", "[::1]")


def test_the_tokens_file_is_read_relative_to_the_plant_file(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "tokens").write_text(f"# kilnwatch API tokens\n{LINE}\n", encoding="utf-8")
    (tmp_path / "plant.yaml").write_text(
        yaml.safe_dump({**demo_plant(), "auth": {"tokens_file": "tokens"}}), encoding="utf-8"
    )
    plant = load_plant_file(tmp_path / "plant.yaml")
    assert plant.auth.tokens_file == tmp_path / "tokens"
    config = build_auth(plant.auth, Settings(api_tokens=f"m:metrics:{'cd' * 32}"))
    assert [(e.name, e.role) for e in config.tokens.entries] == [("ops", Role.VIEWER), ("m", Role.METRICS)]
    with pytest.raises(AccessError, match="token name 'ops' is configured twice"):
        build_auth(plant.auth, Settings(api_tokens=LINE))
    with pytest.raises(AccessError, match="cannot read the tokens file"):
        build_auth(AuthSettings(tokens_file=tmp_path / "missing"), Settings())


def test_tls_needs_both_files() -> None:
    with pytest.raises(ValueError, match="TLS needs both"):
        Settings(tls_cert=Path("cert.pem"))
    with pytest.raises(AccessError, match="no such TLS file"):
        build_auth(
            AuthSettings(), Settings(tls_cert=Path("/nonexistent.pem"), tls_key=Path("/nonexistent.key"))
        )
