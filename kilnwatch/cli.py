"""The ``kilnwatch`` command: run, report, check-config, simulate, demo-config, opcua-cert, token."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import uvloop
import yaml
from pydantic import ValidationError

from api.security.tokens import Role, hash_line, new_token
from collector.sources.supervisor import ConfigurationError

from .access import AccessError, build_auth
from .config import ConfigError, PlantFile, format_validation_error, load_plant_file, parse_plant
from .demo import DEMO_KILNS, DEMO_MQTT_PORT, DEMO_OPCUA_PORT, demo_plant
from .discover.command import add_discover_parser
from .fleet.command import add_fleet_parser
from .report import add_report_parser
from .settings import Settings

log = logging.getLogger("kilnwatch")

#: The loggers of kilnwatch's own packages; ``KILNWATCH_LOG_LEVEL`` sets their level.
OWN_LOGGERS = ("kilnwatch", "collector", "analytics", "api", "simulators")
#: Accepted values of ``KILNWATCH_LOG_LEVEL`` (any case).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Third-party loggers that report every retry or state change at INFO.
_NOISY = ("asyncua", "amqtt", "transitions")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, unless there is none to show (None, a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    try:
        return metadata.version("kilnwatch")
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


def configure_logging(level_name: str) -> None:
    """Log to stderr; ``level_name`` (``KILNWATCH_LOG_LEVEL``) is the level of kilnwatch's own loggers.

    Other libraries log at INFO and above, or at ``level_name`` when it is higher; the noisy ones at
    WARNING. ValueError names the accepted levels.
    """
    name = level_name.upper()
    level = logging.getLevelName(name)
    # only the names uvicorn accepts too (the service passes the setting on to it)
    if name not in LOG_LEVELS or not isinstance(level, int):
        raise ValueError(
            f"KILNWATCH_LOG_LEVEL {level_name!r} is not a log level: DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    logging.basicConfig(
        level=max(level, logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for own in OWN_LOGGERS:
        logging.getLogger(own).setLevel(level)
    # paho writes every packet at DEBUG (and, in the worker process, through a pipe)
    logging.getLogger("collector.mqtt.paho").setLevel(max(level, logging.INFO))
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # The OPC UA supervisor reports each outage and recovery once; asyncua's client logs every retry.
    logging.getLogger("asyncua.client").setLevel(logging.CRITICAL)
    # ... but its warning that a password goes out in plain text stays audible
    client_log = logging.getLogger("asyncua.client.client")
    client_log.setLevel(logging.WARNING)
    client_log.addFilter(_critical_or_plaintext_password)


def _critical_or_plaintext_password(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.CRITICAL or "plain-text password" in str(record.msg)


def _kind(source: Any) -> str:
    """The kind of a signal's source registered besides opcua and mqtt (e.g. sparkplug)."""
    return next(iter(source.model_extra or {}), "?")


def _summary(plant: PlantFile) -> list[str]:
    lines = []
    for p, k in plant.kilns():
        sources = sorted(
            {"opcua" if s.source.opcua else "mqtt" if s.source.mqtt else _kind(s.source) for s in k.signals}
        )
        quantities = ", ".join(s.quantity.value for s in k.signals)
        lines.append(
            f"  {p.id}/{k.id} ({k.name or k.id}): {len(k.signals)} signals "
            f"via {'+'.join(sources)}: {quantities}"
        )
    return lines


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        plant = load_plant_file(args.file)
    except ConfigError as err:
        for e in err.errors:
            print(f"{err.path}: {e}", file=sys.stderr)
        print(f"{err.path}: {len(err.errors)} error(s)", file=sys.stderr)
        return 1
    print(f"ok: {args.file}")
    print("\n".join(_summary(plant)))
    return 0


def cmd_demo_config(args: argparse.Namespace) -> int:
    plant = demo_plant(mqtt_port=None if args.opcua_only else args.mqtt_port, cems=args.cems)
    print(yaml.safe_dump(plant, sort_keys=False))
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    given = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "insecure_no_auth": args.insecure_no_auth,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
    }
    try:
        return Settings(**{k: v for k, v in given.items() if v})
    except ValidationError as err:
        raise ConfigError("environment (KILNWATCH_*)", format_validation_error(err)) from err


def cmd_run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    except ConfigurationError as err:  # a source that cannot work, found while the service is built
        print(f"kilnwatch cannot start: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the event loop took over SIGINT
        log.info("kilnwatch stopped while starting")
        return 0


def _run(args: argparse.Namespace) -> int:
    from .demo_runner import demo_service, unless_stopped
    from .service import Service

    try:
        settings = _settings(args)
        configure_logging(settings.log_level)
        plant = load_plant_file(args.config) if args.config else parse_plant(demo_plant(), "demo plant")
        build_auth(plant.auth, settings)  # before anything starts; the service builds it again
    except (ConfigError, ValueError, AccessError) as err:
        print(f"kilnwatch: {err}", file=sys.stderr)
        return 2

    async def main() -> None:
        # From the start: a Ctrl-C while the demo starts stops what has started, without a traceback.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stopping.set)
        if args.config:
            service: Service | None = Service(plant, settings, plant_path=args.config)
        else:
            start = demo_service(
                settings,
                speed=args.speed,
                backfill_h=args.backfill_hours,
                opcua_port=args.sim_opcua_port,
                mqtt_port=args.sim_mqtt_port,
                cems=args.cems,
            )
            service = await unless_stopped(start, stopping)
        if service is None:
            log.info("kilnwatch stopped while starting")
            return
        service.open()
        stop_on_signal = asyncio.create_task(stopping.wait())
        stop_on_signal.add_done_callback(lambda _: service.stop())
        run = asyncio.create_task(service.run())
        await service.started()
        url = f"{'https' if settings.tls_cert else 'http'}://{settings.host}:{service.bound_port}/"
        print(f"kilnwatch is serving {url}  (API: /api/v1/kilns, /docs)")
        print(f"local store: {settings.store_path}")
        await run

    if settings.event_loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())
    return 0


def cmd_opcua_cert_create(args: argparse.Namespace) -> int:
    from collector.sources.opcua.certgen import create_client_certificate

    password = None
    if args.key_password_file:
        try:
            password = args.key_password_file.read_bytes().rstrip(b"\r\n")
        except OSError as err:
            print(f"{args.key_password_file}: {err.strerror}", file=sys.stderr)
            return 2
    try:
        made = create_client_certificate(
            args.out, args.application_uri, args.hostname, args.days, password, overwrite=args.force
        )
    except (OSError, ValueError) as err:
        print(err, file=sys.stderr)
        return 2
    print(f"certificate: {made.certificate}")
    print(f"private_key: {made.private_key}" + ("  (encrypted)" if password else ""))
    print(f"application URI: {made.application_uri}")
    print(f"thumbprint SHA-256 {made.thumbprint.sha256}, SHA-1 {made.thumbprint.sha1}")
    print("Give the server this certificate to trust; in the plant file, under sources.opcua.<server>:")
    print(f"  certificate: {made.certificate}\n  private_key: {made.private_key}")
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    token = new_token()
    try:
        line = hash_line(args.name, Role(args.role), token)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    print(token)
    print(line)
    print(
        "The first line is the token: give it to its user now, it is not shown again and not kept.\n"
        "The second is its hash line: add it to the plant file's auth.tokens_file or to "
        "KILNWATCH_API_TOKENS, then restart kilnwatch.",
        file=sys.stderr,
    )
    return 0


def cmd_simulate(argv: list[str]) -> int:
    from simulators.cli import main as sim_main

    return int(sim_main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kilnwatch", description="Live CO2 of cement kilns", formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run the service (the built-in demo when no --config is given)",
        description="Run the service. Settings come from KILNWATCH_* variables or .env; the options "
        "below override them. KILNWATCH_LOG_LEVEL (default INFO) sets the level of kilnwatch's loggers.",
        formatter_class=HelpFormatter,
    )
    run.add_argument("--config", type=Path, help="plant file (YAML); default: the demo plant with simulators")
    run.add_argument("--speed", type=float, default=60.0, help="demo simulator speed-up until it catches up")
    run.add_argument("--backfill-hours", type=float, default=6.0, help="demo history before now [h]")
    run.add_argument("--sim-opcua-port", type=int, default=DEMO_OPCUA_PORT, help="demo OPC UA simulator port")
    run.add_argument("--sim-mqtt-port", type=int, default=DEMO_MQTT_PORT, help="demo MQTT broker port")
    run.add_argument(
        "--cems", choices=("json", "sparkplug"), default="json", help="demo analysers: JSON or Sparkplug B"
    )
    run.add_argument("--host", help="API address (default: KILNWATCH_HOST, else 127.0.0.1)")
    run.add_argument("--port", type=int, help="API port (default: KILNWATCH_PORT, else 8000)")
    run.add_argument(
        "--data-dir",
        type=Path,
        help="where the SQLite store lives (default: KILNWATCH_DATA_DIR, else per user)",
    )
    run.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve a non-loopback address without API tokens (anyone who reaches it reads everything)",
    )
    run.add_argument(
        "--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM; KILNWATCH_TLS_CERT)"
    )
    run.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM; KILNWATCH_TLS_KEY)")
    run.set_defaults(func=cmd_run)

    add_report_parser(sub, formatter_class=HelpFormatter)
    add_fleet_parser(sub, formatter_class=HelpFormatter)

    check = sub.add_parser(
        "check-config", help="validate a plant file without running", formatter_class=HelpFormatter
    )
    check.add_argument("file", type=Path, help="plant file (YAML)")
    check.set_defaults(func=cmd_check_config)
    add_discover_parser(sub, formatter_class=HelpFormatter)

    demo = sub.add_parser("demo-config", help="print the demo plant file", formatter_class=HelpFormatter)
    demo.add_argument("--opcua-only", action="store_true", help="analysers over OPC UA instead of MQTT")
    demo.add_argument("--mqtt-port", type=int, default=18830, help="port of the demo MQTT broker")
    demo.add_argument(
        "--cems", choices=("json", "sparkplug"), default="json", help="analysers' MQTT payloads"
    )
    demo.set_defaults(func=cmd_demo_config)

    cert = sub.add_parser(
        "opcua-cert", help="kilnwatch's OPC UA application certificate", formatter_class=HelpFormatter
    )
    cert_sub = cert.add_subparsers(dest="action", required=True)
    create = cert_sub.add_parser(
        "create",
        help="make a self-signed client certificate and its private key",
        description="Make kilnwatch's OPC UA application certificate (DER) and RSA key (PEM). The "
        "certificate carries the application URI as SubjectAlternativeName URI; kilnwatch's client "
        "uses the same URI when it connects with this certificate.",
        formatter_class=HelpFormatter,
    )
    create.add_argument("--out", type=Path, required=True, help="directory for the two files")
    create.add_argument("--application-uri", required=True, help="e.g. urn:plant1:kilnwatch")
    create.add_argument(
        "--hostname",
        action="append",
        help="DNS name or IP address of this machine, repeatable (default: this machine's host name)",
    )
    create.add_argument("--days", type=int, default=365, help="validity [days]")
    create.add_argument(
        "--key-password-file", type=Path, help="encrypt the private key with this file's text"
    )
    create.add_argument("--force", action="store_true", help="overwrite existing files")
    create.set_defaults(func=cmd_opcua_cert_create)

    token = sub.add_parser("token", help="API tokens", formatter_class=HelpFormatter)
    token_sub = token.add_subparsers(dest="action", required=True)
    make = token_sub.add_parser(
        "create",
        help="make a new API token; prints it once, then its hash line",
        description="Make a random API token (32 bytes). Prints the token (stdout, line 1: give it to "
        "its user, it is kept nowhere) and its hash line name:role:sha256hex (line 2: for "
        "auth.tokens_file or KILNWATCH_API_TOKENS). Roles: metrics (/metrics and /readyz), viewer "
        "(read everything), operator (viewer + operator actions), admin (everything).",
        formatter_class=HelpFormatter,
    )
    make.add_argument("--role", required=True, choices=[r.value for r in Role])
    make.add_argument("--name", required=True, help="who or what uses it, e.g. control-room or prometheus")
    make.set_defaults(func=cmd_token_create)

    sub.add_parser(
        "simulate", help="run the kiln simulators alone (see kilnwatch simulate --help)", add_help=False
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        return cmd_simulate(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args))


__all__ = ["DEMO_KILNS", "DEMO_OPCUA_PORT", "main"]
