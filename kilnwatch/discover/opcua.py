"""Browse an OPC UA server (asyncua) for numeric variables, their EngineeringUnits and EURange."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from asyncua import Client, ua

from collector.sources.opcua.security import configure_security
from collector.sources.opcua.spec import OpcUaServerSpec
from collector.sources.opcua.trust import SecuritySetupError, ServerTrust, UntrustedServer

from . import units
from .candidates import Candidate, kiln_id, signal_id, split_kiln
from .errors import DiscoverError, Unreachable

#: Built-in numeric data types (Part 6): SByte .. Double, and Number/Integer/UInteger/Duration.
_NUMERIC = frozenset({*range(2, 12), 26, 27, 28, 290})
_CHUNK = 200  # nodes per Browse/Read request, well under servers' MaxNodesPerRead/Browse


def _std(identifier: int) -> ua.NodeId:
    """A node id of namespace 0 (the standard's own nodes)."""
    return ua.NodeId(ua.Int32(identifier), ua.Int16(0))


_HAS_PROPERTY = _std(ua.ObjectIds.HasProperty)
T = TypeVar("T")


@dataclass
class Found:
    """A variable met while browsing."""

    nodeid: ua.NodeId
    path: tuple[str, ...]
    """Browse names from the root (exclusive) to the variable (inclusive)."""
    eu: ua.NodeId | None = None
    eu_range: ua.NodeId | None = None


def node_string(nodeid: ua.NodeId, namespaces: Sequence[str]) -> str | None:
    """``nsu=<uri>;s=...`` (or i=, g=) of a node id; None for opaque (ByteString) ids."""
    uri = namespaces[nodeid.NamespaceIndex]
    kind, ident = nodeid.NodeIdType, str(nodeid.Identifier)
    if kind in (ua.NodeIdType.TwoByte, ua.NodeIdType.FourByte, ua.NodeIdType.Numeric):
        return f"nsu={uri};i={ident}"
    if kind == ua.NodeIdType.String:
        return f"nsu={uri};s={ident}"
    if kind == ua.NodeIdType.Guid:
        return f"nsu={uri};g={ident}"
    return None


def parse_root(text: str, namespaces: Sequence[str]) -> ua.NodeId:
    """A node id as ``nsu=<uri>;s=...``, ``ns=2;s=...`` or ``i=85``; DiscoverError if not one."""
    try:
        if text.startswith("nsu="):
            uri, _, rest = text[4:].partition(";")
            if uri not in namespaces:
                raise DiscoverError(f"--root {text}: the server has no namespace {uri!r}")
            return ua.NodeId.from_string(f"ns={namespaces.index(uri)};{rest}")
        return ua.NodeId.from_string(text)
    except (ValueError, ua.UaStringParsingError) as err:
        raise DiscoverError(
            f"--root {text!r} is not a node id (e.g. 'nsu=urn:plant;s=Kiln1'): {err}"
        ) from err


def _chunks(items: Sequence[T]) -> list[Sequence[T]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


async def _browse(client: Client, nodeids: Sequence[ua.NodeId]) -> list[list[ua.ReferenceDescription]]:
    """Forward hierarchical references of each node, following continuation points."""
    out: list[list[ua.ReferenceDescription]] = []
    for chunk in _chunks(nodeids):
        params = ua.BrowseParameters()
        params.View = ua.ViewDescription()
        params.RequestedMaxReferencesPerNode = 0
        for nid in chunk:
            desc = ua.BrowseDescription()
            desc.NodeId = nid
            desc.BrowseDirection = ua.BrowseDirection.Forward
            desc.ReferenceTypeId = _std(ua.ObjectIds.HierarchicalReferences)
            desc.IncludeSubtypes = True
            desc.NodeClassMask = ua.NodeClass.Object | ua.NodeClass.Variable
            desc.ResultMask = ua.BrowseResultMask.All
            params.NodesToBrowse.append(desc)
        for result in await client.uaclient.browse(params):
            refs = list(result.References)
            cont = result.ContinuationPoint
            while cont:
                more = ua.BrowseNextParameters()
                more.ContinuationPoints = [cont]
                (nxt,) = await client.uaclient.browse_next(more)
                refs.extend(nxt.References)
                cont = nxt.ContinuationPoint
            out.append(refs)
    return out


async def _read(client: Client, nodeids: Sequence[ua.NodeId], attr: ua.AttributeIds) -> list[ua.DataValue]:
    out: list[ua.DataValue] = []
    for chunk in _chunks(nodeids):
        out.extend(await client.uaclient.read_attributes(list(chunk), attr))
    return out


async def walk(
    client: Client, root: ua.NodeId, max_depth: int, max_nodes: int, progress: Callable[[str], None]
) -> tuple[list[Found], bool]:
    """Breadth-first from ``root`` through objects and variables of the server's own namespaces
    (namespace 0, the server's self-description, is skipped), at most ``max_depth`` levels down and
    ``max_nodes`` nodes; the variables of the last level still get their properties. Returns the
    variables and whether a bound cut the browse short."""
    found: dict[ua.NodeId, Found] = {}
    seen = {root}
    level: list[tuple[ua.NodeId, tuple[str, ...], bool]] = [(root, (), False)]
    cut = False
    for depth in range(1, max_depth + 2):
        if depth > max_depth:  # past the bound: only the properties of the last variables
            cut = cut or not all(is_var for _, _, is_var in level)
            level = [item for item in level if item[2]]
        if not level:
            break
        results = await _browse(client, [nid for nid, _, _ in level])
        nxt: list[tuple[ua.NodeId, tuple[str, ...], bool]] = []
        for (parent, path, parent_is_var), refs in zip(level, results, strict=True):
            for ref in refs:
                nid, name = ref.NodeId, ref.BrowseName.Name
                if ref.ReferenceTypeId == _HAS_PROPERTY:
                    if parent_is_var and name == "EngineeringUnits":
                        found[parent].eu = nid
                    elif parent_is_var and name == "EURange":
                        found[parent].eu_range = nid
                    continue
                if nid.NamespaceIndex == 0 or nid in seen:
                    continue
                if depth > max_depth or len(seen) > max_nodes:  # seen holds the root too
                    cut = True
                    continue
                seen.add(nid)
                is_var = ref.NodeClass == ua.NodeClass.Variable
                if is_var:
                    found[nid] = Found(nid, (*path, name))
                nxt.append((nid, (*path, name), is_var))
        if depth <= max_depth:
            progress(f"depth {depth}: {len(seen) - 1} nodes, {len(found)} variables")
        level = nxt
    return list(found.values()), cut


async def discover(
    url: str,
    server_name: str,
    root_text: str | None,
    max_depth: int,
    max_nodes: int,
    timeout_s: float,
    default_kiln: str = "kiln1",
    progress: Callable[[str], None] | None = None,
    spec: OpcUaServerSpec | None = None,
) -> list[Candidate]:
    """The numeric variables under ``root_text`` (default: the Objects folder) as candidates.

    ``spec``: security policy, certificates, trust and user as in the plant file, set up as the
    OPC UA collector does (the server's certificate checked before anything is sent)."""
    say = progress or (lambda msg: print(f"discover {url}: {msg}", file=sys.stderr))
    client = Client(url, timeout=timeout_s)
    try:
        if spec is not None:
            await asyncio.wait_for(
                configure_security(client, spec, ServerTrust(spec, server_name)), timeout_s
            )
        await asyncio.wait_for(client.connect(), timeout_s)
    except (OSError, TimeoutError, ua.UaError, SecuritySetupError, UntrustedServer) as err:
        raise Unreachable(f"cannot connect to {url}: {_why(err, timeout_s)}") from err
    try:
        namespaces = await client.get_namespace_array()
        root = parse_root(root_text, namespaces) if root_text else _std(ua.ObjectIds.ObjectsFolder)
        try:
            root_name = (await client.get_node(root).read_browse_name()).Name
        except ua.UaStatusCodeError as err:
            raise DiscoverError(f"--root {root_text}: the server has no such node ({err})") from err
        say(
            f"connected; browsing from {root_text or 'the Objects folder'} (depth {max_depth}, "
            f"at most {max_nodes} nodes)"
        )
        variables, cut = await walk(client, root, max_depth, max_nodes, say)
        if cut:
            say(
                f"browse cut short at depth {max_depth} or {max_nodes} nodes: raise --max-depth/--max-nodes "
                "or narrow --root"
            )
        root_path = (root_name,) if root_text else ()  # a root may be the kiln itself
        return await _candidates(client, variables, namespaces, server_name, root_path, default_kiln)
    except (OSError, TimeoutError, ua.UaError) as err:
        raise Unreachable(f"browsing {url} failed: {_why(err, timeout_s)}") from err
    finally:
        with contextlib.suppress(OSError, TimeoutError, ua.UaError):
            await asyncio.wait_for(client.disconnect(), timeout_s)


async def _candidates(
    client: Client,
    found: list[Found],
    namespaces: Sequence[str],
    server: str,
    root_path: tuple[str, ...],
    default_kiln: str,
) -> list[Candidate]:
    """Candidates of the numeric scalars; the kiln from the browse path (see ``split_kiln``)."""
    types = await _read(client, [f.nodeid for f in found], ua.AttributeIds.DataType)
    ranks = await _read(client, [f.nodeid for f in found], ua.AttributeIds.ValueRank)
    numeric = [
        f
        for f, t, r in zip(found, types, ranks, strict=True)
        if t.Value is not None
        and t.Value.Value.NamespaceIndex == 0
        and t.Value.Value.Identifier in _NUMERIC
        and (r.Value is None or r.Value.Value in (-1, -3))  # scalars only
    ]
    eus = await _read(client, [f.eu for f in numeric if f.eu is not None], ua.AttributeIds.Value)
    ranges = await _read(
        client, [f.eu_range for f in numeric if f.eu_range is not None], ua.AttributeIds.Value
    )
    eu_by = dict(zip([f.nodeid for f in numeric if f.eu is not None], eus, strict=True))
    range_by = dict(zip([f.nodeid for f in numeric if f.eu_range is not None], ranges, strict=True))
    out = []
    for f in numeric:
        node = node_string(f.nodeid, namespaces)
        if node is None:
            continue  # a ByteString id cannot be written in the plant file
        kiln, rest = split_kiln((*root_path, *f.path), default_kiln)
        c = Candidate(
            kiln=kiln_id(kiln),
            signal_id=signal_id(kiln_id(kiln), *rest),
            name=".".join(rest),
            source={"opcua": {"server": server, "node": node}},
        )
        eu = _value(eu_by.get(f.nodeid))
        if isinstance(eu, ua.EUInformation):
            shown = eu.DisplayName.Text or ""
            code = units.unece_code(eu.UnitId)
            c.unit_said = f"{shown} (UNECE {code})" if code else shown
            c.unit = units.from_eu_information(eu.NamespaceUri, eu.UnitId, shown)
        rng = _value(range_by.get(f.nodeid))
        if isinstance(rng, ua.Range) and rng.Low <= rng.High:
            c.range = (float(rng.Low), float(rng.High))
        out.append(c)
    return out


def _why(err: BaseException, timeout_s: float) -> str:
    if isinstance(err, TimeoutError):
        return f"no OPC UA answer within {timeout_s:g} s"
    return str(err) or type(err).__name__


def _value(dv: ua.DataValue | None) -> object:
    if dv is None or dv.Value is None or (dv.StatusCode is not None and not dv.StatusCode.is_good()):
        return None
    return dv.Value.Value
