"""OPC UA security settings in the plant file (through ``kilnwatch check-config``) and the
``kilnwatch opcua-cert create`` command."""

from __future__ import annotations

import copy
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ValidationError

from collector.sources.opcua.security import application_uri
from collector.sources.opcua.spec import OpcUaServerSpec
from kilnwatch import cli
from kilnwatch.demo import demo_plant

URL = "opc.tcp://127.0.0.1:4840/ua"
SECURE = {"security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt"}
CERTS = {"certificate": "client.der", "private_key": "client.pem"}


def check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], **opcua: Any) -> tuple[int, str]:
    plant = copy.deepcopy(demo_plant(mqtt_port=None))
    plant["sources"]["opcua"]["sim"].update(opcua)
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(plant))
    code = cli.main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_password_over_security_none_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = check_config(tmp_path, capsys, username="operator", password="test-only-pw")
    assert code == 1
    assert "plant.yaml: sources.opcua.sim: username/password with security_policy None" in text
    assert "allow_plaintext_password" in text
    assert "test-only-pw" not in text
    code, text = check_config(
        tmp_path, capsys, username="operator", password="test-only-pw", allow_plaintext_password=True
    )
    assert code == 0, text


@pytest.mark.parametrize("policy", ["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"])
def test_a_secure_policy_without_trust_is_refused(
    policy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = {**CERTS, "security_policy": policy, "security_mode": "Sign"}
    code, text = check_config(tmp_path, capsys, **settings)
    assert code == 1
    assert f"plant.yaml: sources.opcua.sim: security_policy {policy} needs the server's certificate" in text
    assert "trust_dir" in text and "trust_any_server_certificate" in text
    code, text = check_config(tmp_path, capsys, **settings, trust_any_server_certificate=True)
    assert code == 0, text


@pytest.mark.parametrize(
    "thumbprint",
    ["AB:CD:" + "12" * 18, "ab cd " + "12" * 30, "a" * 40, "F" * 64],
)
def test_thumbprints_are_normalised(thumbprint: str) -> None:
    spec = OpcUaServerSpec(url=URL, **SECURE, **CERTS, server_thumbprint=thumbprint)  # type: ignore[arg-type]
    assert spec.server_thumbprint is not None and len(spec.server_thumbprint) in (40, 64)
    assert spec.server_thumbprint == spec.server_thumbprint.lower().replace(":", "").replace(" ", "")


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({**SECURE, **CERTS, "server_thumbprint": "abc"}, id="short-thumbprint"),
        pytest.param({**SECURE, **CERTS, "server_thumbprint": "g" * 40}, id="not-hex"),
        pytest.param(
            {
                **SECURE,
                **CERTS,
                "trust_dir": "t",
                "private_key_password_file": "f",
                "private_key_password_env": "E",
            },
            id="two-key-passwords",
        ),
        pytest.param({"trust_dir": "trusted"}, id="trust-without-policy"),
        pytest.param({**SECURE, "trust_dir": "trusted"}, id="no-client-certificate"),
    ],
)
def test_inconsistent_security_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        OpcUaServerSpec(url=URL, **settings)


def test_opcua_cert_create(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, secret = tmp_path / "pki", tmp_path / "key-password"
    secret.write_text("key-pw-for-tests\n")
    argv = ["opcua-cert", "create", "--out", str(out), "--application-uri", "urn:plant1:kilnwatch"]
    argv += ["--hostname", "gw.plant1.local", "--hostname", "127.0.0.1", "--days", "30"]
    code = cli.main([*argv, "--key-password-file", str(secret)])
    printed = capsys.readouterr().out
    assert code == 0
    cert = x509.load_der_x509_certificate((out / "kilnwatch-client.der").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:plant1:kilnwatch"]
    assert san.get_values_for_type(x509.DNSName) == ["gw.plant1.local"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert application_uri(cert) == "urn:plant1:kilnwatch"  # what the client then announces
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30
    key_path = out / "kilnwatch-client-key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    with pytest.raises(TypeError):  # encrypted: no key without the password
        load_pem_private_key(key_path.read_bytes(), password=None)
    key = load_pem_private_key(key_path.read_bytes(), password=b"key-pw-for-tests")
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    assert "key-pw-for-tests" not in printed and "SHA-256" in printed
    assert cli.main(argv) == 2  # the files exist: not overwritten without --force
    assert "--force" in capsys.readouterr().err


def test_run_refuses_a_password_over_security_none_at_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    check_config(tmp_path, capsys, username="operator", password="test-only-pw")
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    code = cli.main(["run", "--config", str(tmp_path / "plant.yaml"), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "sources.opcua.sim: username/password with security_policy None" in err
    assert "test-only-pw" not in err


def test_asyncuas_plaintext_password_warning_stays_audible(caplog: pytest.LogCaptureFixture) -> None:
    names = ["asyncua", "asyncua.client", "asyncua.client.client", *cli.OWN_LOGGERS]
    levels = {n: logging.getLogger(n).level for n in names}
    client_log = logging.getLogger("asyncua.client.client")
    try:
        cli.configure_logging("INFO")
        client_log.warning("Sending plain-text password")
        client_log.warning("Requested session timeout to be 3600000ms, got 600000ms instead")
        logging.getLogger("asyncua.client.ua_client").warning("reconnecting")
    finally:
        client_log.removeFilter(cli._critical_or_plaintext_password)
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("asyncua")] == [
        "Sending plain-text password"
    ]
