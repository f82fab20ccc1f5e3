"""The access policy on the whole service: the CLI refuses a non-loopback address without tokens,
the service answers over TLS with a Secure cookie, and refuses an unknown Host header."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.security.tokens import Role, hash_line, new_token
from kilnwatch.cli import main
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration
#: Bound of the refused start [s]: it stops before anything starts, well within this.
REFUSE_TIMEOUT_S = 60


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILNWATCH_")}
    return {**env, **extra}


def test_a_non_loopback_bind_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    args = ["run", "--host", "0.0.0.0", "--port", str(free_port()), "--data-dir", str(data_dir)]
    done = subprocess.run(
        [sys.executable, "-m", "kilnwatch", *args],
        capture_output=True,
        text=True,
        timeout=REFUSE_TIMEOUT_S,
        env=_env(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to serve the API on 0.0.0.0 without API tokens" in done.stderr
    assert "kilnwatch token create" in done.stderr and "--insecure-no-auth" in done.stderr
    assert "Traceback" not in done.stderr
    assert not data_dir.exists()  # nothing started, no store opened


def test_a_broken_tokens_line_refuses_to_start_and_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KILNWATCH_API_TOKENS", "ops:viewer:kw_sometoken")
    assert main(["run", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "KILNWATCH_API_TOKENS:1: ops: the hash must be 64 hex digits" in err
    assert "kw_sometoken" not in err
    assert not (tmp_path / "data").exists()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls_with_tokens_a_secure_cookie_and_only_known_hosts(
    start_service: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    viewer, metrics = new_token(), new_token()
    lines = f"{hash_line('screen', Role.VIEWER, viewer)}\n{hash_line('prom', Role.METRICS, metrics)}"
    monkeypatch.setenv("KILNWATCH_API_TOKENS", lines)
    monkeypatch.setenv("KILNWATCH_TLS_CERT", str(cert))
    monkeypatch.setenv("KILNWATCH_TLS_KEY", str(key))
    svc = start_service(speed=60, backfill_h=0.2)
    url = f"https://127.0.0.1:{svc.service.bound_port}"
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=url, verify=trust, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 401
        r = client.get("/metrics", headers={"Authorization": f"Bearer {metrics}"})
        assert r.status_code == 200 and "kilnwatch_readings_total" in r.text
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert client.get("/api/v1/kilns", headers={"Authorization": f"Bearer {metrics}"}).status_code == 403
        signed_in = client.post("/api/v1/session", json={"token": viewer})
        assert signed_in.status_code == 200
        assert "secure" in [a.strip().lower() for a in signed_in.headers["set-cookie"].split(";")]
        assert [k["id"] for k in client.get("/api/v1/kilns").json()] == ["kiln1", "kiln2"]
        assert client.get("/api/v1/kilns", headers={"Host": "kilnwatch.evil.example"}).status_code == 400
        assert client.get("/api/v1/kilns", headers={"Host": "localhost"}).status_code == 200
    with pytest.raises(httpx.HTTPError):  # plain http on the TLS port
        httpx.get(f"http://127.0.0.1:{svc.service.bound_port}/healthz", timeout=5)
