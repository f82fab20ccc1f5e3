"""``kilnwatch discover URL... [--output FILE]``: draft a plant file from what the sources offer."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from collector.sources.mqtt.spec import MqttBrokerSpec
from collector.sources.opcua.spec import OpcUaServerSpec

from ..config import SourcesConfig, format_validation_error
from .candidates import Candidate, propose
from .draft import SourceEntry, problems, render
from .errors import DiscoverError

EXIT_USAGE = 2


def add_discover_parser(sub: Any, formatter_class: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "discover",
        help="draft a plant file by browsing an OPC UA server or sampling an MQTT broker",
        description="Browse OPC UA servers (opc.tcp://host:port) and sample MQTT brokers "
        "(mqtt://host:port) and write a plant-file draft: signals with nsu= node ids or JSON-path "
        "bindings, units and ranges from the source, quantities proposed from names and units and "
        "marked 'review' in comments. Several URLs make one draft. Exit code 1: a source could not "
        "be read; 2: bad arguments.",
        formatter_class=formatter_class,
    )
    p.add_argument("url", nargs="+", help="opc.tcp://host:port or mqtt://host:port")
    p.add_argument("--output", "-o", default="-", help="draft file ('-': standard output)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    p.add_argument(
        "--name",
        action="append",
        help="name of each source in the draft, in URL order "
        "(default: opcua, mqtt; numbered when there are several)",
    )
    p.add_argument("--plant-id", default="plant", help="id of the plant in the draft")
    p.add_argument("--kiln", default="kiln1", help="kiln of values no browse path or topic level names")
    p.add_argument("--timeout", type=float, default=10.0, help="connect and request timeout [s]")
    p.add_argument(
        "--root",
        help="OPC UA: node to browse from, e.g. 'nsu=urn:plant;s=Kiln1' (default: the Objects folder)",
    )
    p.add_argument(
        "--opcua-settings",
        type=Path,
        help="OPC UA: YAML file with the server's settings as under sources.opcua.<name> in the plant "
        "file, without url (security_policy, security_mode, certificate, private_key, trust_dir or "
        "server_certificate, username, password_env, ...); copied into the draft (default: no security)",
    )
    p.add_argument("--max-depth", type=int, default=8, help="OPC UA: levels to browse below the root")
    p.add_argument("--max-nodes", type=int, default=5000, help="OPC UA: nodes to browse at most")
    p.add_argument(
        "--mqtt-settings",
        type=Path,
        help="MQTT: YAML file with the broker's settings as under sources.mqtt.<name> in the plant "
        "file, without host and port (tls, ca_file, certfile, keyfile, username, password_env, ...); "
        "copied into the draft (default: plain MQTT, anonymous)",
    )
    p.add_argument("--topic", default="#", help="MQTT: topic filter to subscribe to")
    p.add_argument("--seconds", type=float, default=30.0, help="MQTT: how long to sample [s]")
    p.add_argument("--max-messages", type=int, default=10_000, help="MQTT: stop sampling after this many")
    p.set_defaults(func=cmd_discover)


def _names(args: argparse.Namespace) -> list[str]:
    given = list(args.name or [])
    if len(given) > len(args.url):
        raise DiscoverError("more --name than URLs")
    kinds = ["opcua" if u.startswith("opc.tcp://") else "mqtt" for u in args.url]
    out = []
    for i, kind in enumerate(kinds):
        if i < len(given):
            out.append(given[i])
        else:
            same = kinds.count(kind)
            out.append(kind if same == 1 else f"{kind}{kinds[: i + 1].count(kind)}")
    return out


def _discover_one(args: argparse.Namespace, url: str, name: str) -> tuple[list[Candidate], SourceEntry]:
    if url.startswith("opc.tcp://"):
        from . import opcua

        settings = _settings(args.opcua_settings, "opcua", name, {"url": url})
        spec = None if settings is None else OpcUaServerSpec.model_validate(settings)
        found = asyncio.run(
            opcua.discover(
                url, name, args.root, args.max_depth, args.max_nodes, args.timeout, args.kiln, spec=spec
            )
        )
        entry = SourceEntry("opcua", name, settings or {"url": url})
        if settings is None:
            entry.notes.append("browsed without security: add security_policy, certificates and user here")
        return found, entry
    if url.startswith("mqtt://"):
        from . import mqtt

        host, port = mqtt.broker_address(url)
        given = _settings(args.mqtt_settings, "mqtt", name, {"host": host, "port": port})
        broker = None if given is None else MqttBrokerSpec.model_validate(given)
        samples = mqtt.sample(url, args.topic, args.seconds, args.max_messages, args.timeout, spec=broker)
        found, statuses = mqtt.candidates(samples, name, args.kiln)
        entry = SourceEntry("mqtt", name, given or {"host": host, "port": port})
        if statuses:
            entry.notes.append(
                f"status values seen that need a status_map (ok/maintenance/calibration/fault): "
                f"{sorted(statuses)[:20]}"
            )
        return found, entry
    raise DiscoverError(f"{url!r}: give an opc.tcp:// or mqtt:// URL")


def _settings(path: Path | None, kind: str, name: str, address: dict[str, Any]) -> dict[str, Any] | None:
    """The --opcua-settings / --mqtt-settings file with the URL's ``address``, checked as the plant
    file would check it (SourcesConfig raises for what it would refuse). A literal password is
    refused: the draft is a file to pass around, it names password_file or password_env."""
    if path is None:
        return None
    option = f"--{kind}-settings {path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DiscoverError(f"{option}: {err}") from err
    if not isinstance(data, dict):
        raise DiscoverError(f"{option}: expected a mapping of {kind} source settings")
    if "password" in data:
        raise DiscoverError(f"{option}: give password_file or password_env, not password")
    settings = {**address, **{k: v for k, v in data.items() if k not in address}}
    try:
        SourcesConfig.model_validate({kind: {name: settings}})
    except ValidationError as err:
        raise DiscoverError(f"{option}: " + "; ".join(format_validation_error(err))) from err
    return settings


def cmd_discover(args: argparse.Namespace) -> int:
    # asyncua warns of every policy it lacks and logs an untrusted certificate with its traceback;
    # what stops discovery is said once, by the error below
    for name in ("asyncua", "asyncuagds"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    out = Path(args.output) if args.output != "-" else None
    if out is not None and out.exists() and not args.force:
        print(f"kilnwatch discover: {out} exists (--force to overwrite)", file=sys.stderr)
        return EXIT_USAGE
    try:
        names = _names(args)
        results = [_discover_one(args, url, name) for url, name in zip(args.url, names, strict=True)]
    except DiscoverError as err:
        print(f"kilnwatch discover: {err}", file=sys.stderr)
        return err.exit_code
    candidates = [propose(c) for found, _ in results for c in found]
    text = render(candidates, [entry for _, entry in results], args.plant_id, list(args.url))
    proposed = sum(c.quantity is not None for c in candidates)
    print(
        f"kilnwatch discover: {len(candidates)} values, {proposed} with a proposed quantity", file=sys.stderr
    )
    if out is None:
        sys.stdout.write(text)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as err:
            print(f"kilnwatch discover: cannot write {out}: {err.strerror}", file=sys.stderr)
            return EXIT_USAGE
        print(f"kilnwatch discover: draft written to {out}", file=sys.stderr)
    issues = problems(text)
    if issues:
        print("kilnwatch discover: the draft does not pass check-config yet:", file=sys.stderr)
        for line in issues:
            print(f"  {line}", file=sys.stderr)
    return 0
