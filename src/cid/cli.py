"""``cid``: the command line for providers and registry operators (issue 3).

Typical use: the examples in :data:`DESCRIPTION` (what ``cid --help`` prints) and the
delegation request in ``_EPILOG_FLOW`` (``cid keygen`` and ``cid pubkey`` on the provider's
side, ``cid delegate`` on the operator's).

Theory of operation
-------------------
This module is an I/O edge (STYLE 1): it builds record bodies with the models
of :mod:`cid.record`, signs them with :func:`cid.envelope.sign_record` and talks
to a registry with :class:`cid.client.RegistryClient`. Every command is an
``async`` function of the parsed arguments and an :class:`Output`; :func:`main`
runs it and maps outcomes to exit statuses:

* ``0``: success;
* ``1``: a :class:`~cid.errors.CidError`, printed on stderr as
  ``error NAME (code): message [field]`` (with ``--json`` the wire error object
  is also printed on stdout as ``{"error": {...}}``); any other exception is
  reported as ``INTERNAL`` the same way, never as a traceback (``CID_DEBUG=1``
  shows it);
* ``2``: a usage error (argparse's convention);
* ``130``: interrupted (Ctrl-C).

Signing conventions: every signed record has ``nbf = now - 60`` (one minute of
clock skew towards the registry) and ``exp = now + ttl``. Serials default to the
current Unix time, like DNS date serials (``2026010101``): they increase by
themselves between runs without any state on the signer's side, as long as one
identity is not signed twice within one second (then pass ``--serial``).
``refresh`` and ``delete`` first resolve the name and never go below the held
serial plus one.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import sys
import time
import traceback
import unicodedata
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

from . import codec, query_text
from .client import RegistryClient
from .envelope import MAX_VALIDITY_S, Envelope, sign_record
from .errors import (
    CidError,
    DecodeError,
    HeadMismatchError,
    InternalError,
    NotFoundError,
    SchemaError,
    VerificationError,
)
from .feed import CHAIN_ZERO, FEED_HEAD_TYP, SNAPSHOT_TYP, SnapshotHead, chain_step
from .feed import snapshot_digest as compute_snapshot_digest
from .identifier import Identifier
from .invocation import TASK_TERMINAL_STATES, verify_receipt
from .model import WireModel, validate
from .negotiation import Agreement, MaxPrice, verify_agreement
from .query import Query, ResolveResponse, ResourceDemand
from .record import (
    DelegationBody,
    KeyRotationBody,
    OfferBody,
    RefreshBody,
    TombstoneBody,
    ZoneBody,
    record_type_of,
)
from .requester import Requester
from .resolver import Resolver
from .signing import PublicKey, SigningKey
from .trust import TrustState

__all__ = ["DEFAULT_REGISTRY", "Output", "Progress", "build_parser", "main", "table"]

DEFAULT_REGISTRY: Final = "http://127.0.0.1:8470"
NBF_SLACK_S: Final = 60
"""``nbf`` is this many seconds before now, for clock skew between signer and registry."""
MAX_TTL_S: Final = MAX_VALIDITY_S - NBF_SLACK_S
MAX_DAYS: Final = MAX_TTL_S // 86_400
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
_KID_LENGTH: Final = 22


class UsageError(Exception):
    """A command line that parses but makes no sense: exit status 2."""


# --- output ---------------------------------------------------------------------------------


def _width(text: str) -> int:
    """Display width: East Asian wide and fullwidth characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table with left-aligned columns (CJK-aware widths)."""
    cells = [[str(h) for h in headers]] + [
        ["-" if v is None else str(v) for v in row] for row in rows
    ]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [c + " " * (widths[i] - _width(c)) for i, c in enumerate(r)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _error_line(err: CidError) -> str:
    where = f" [{err.field}]" if err.field else ""
    return f"error {err.name} ({err.code}): {err.message}{where}"


@dataclass
class Output:
    """Where a command writes: results on stdout (human or ``--json``), the rest on stderr."""

    json: bool = False
    quiet: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    def emit(self, value: Any, human: Callable[[], str] | str) -> None:
        """Print ``value`` as JSON with ``--json``, else the human rendering."""
        if self.json:
            self.stdout.write(_document(value))
        else:
            text = human() if callable(human) else human
            if text:
                self.stdout.write(text + "\n")
        self.stdout.flush()

    def line(self, value: Any) -> None:
        """One NDJSON line (streaming output with ``--json``)."""
        self.write(_dumps(value) + "\n")

    def write(self, text: str) -> None:
        """``text`` on stdout as it is, at once (streaming human output)."""
        self.stdout.write(text)
        self.stdout.flush()

    def note(self, text: str) -> None:
        """Progress and remarks on stderr, unless ``--quiet``."""
        if not self.quiet:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def error(self, err: CidError, *, prefix: str = "", to_stdout: bool = True) -> None:
        self.stderr.write(prefix + _error_line(err) + "\n")
        self.stderr.flush()
        if self.json and to_stdout:
            self.stdout.write(_dumps({"error": err.to_wire()}) + "\n")
            self.stdout.flush()


def _dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _document(value: Any) -> str:
    """``value`` as an indented JSON document ending in a newline."""
    return _dumps(value, indent=2) + "\n"


def _one_or_list(values: Sequence[Any]) -> Any:
    """A single value as itself, several as a list (key and envelope files)."""
    return values[0] if len(values) == 1 else list(values)


class Progress:
    """A progress display on stderr: ``done/total``, rate and elapsed time.

    On a terminal the line is redrawn in place (at most ten times a second);
    otherwise (a log file, a pipe) one line is written at most once a second,
    plus the final one.
    """

    def __init__(self, out: Output, label: str, total: int | None, unit: str = "items") -> None:
        self.out = out
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.start = time.monotonic()
        self._last = 0.0
        self._tty = out.stderr.isatty()
        self._shown = -1

    def _fmt(self, n: float) -> str:
        if self.unit != "bytes":
            return str(int(n))
        if n >= 1024 * 1024:
            return f"{n / 1048576:.1f} MiB"
        return f"{n / 1024:.1f} KiB"

    def _render(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = self.done / elapsed
        rate_text = f"{self._fmt(rate)}/s" if self.unit == "bytes" else f"{rate:.0f} {self.unit}/s"
        if self.total:
            pct = 100 * self.done / self.total
            count = f"{self._fmt(self.done)}/{self._fmt(self.total)} ({pct:.0f}%)"
        else:
            count = self._fmt(self.done)
        return f"{self.label}: {count}, {rate_text}, {elapsed:.1f}s"

    def advance(self, n: int) -> None:
        self.done += n
        if self.out.quiet:
            return
        now = time.monotonic()
        if now - self._last < (0.1 if self._tty else 1.0):
            return
        self._last = now
        self._draw()

    def _draw(self, final: bool = False) -> None:
        self._shown = self.done
        if self._tty:
            end = "\n" if final else ""
            self.out.stderr.write("\r\x1b[K" + self._render() + end)
        else:
            self.out.stderr.write(self._render() + "\n")
        self.out.stderr.flush()

    def finish(self) -> None:
        if not self.out.quiet and (self._tty or self._shown != self.done):
            self._draw(final=True)


# --- inputs ---------------------------------------------------------------------------------


def _read_text(path: str, what: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise DecodeError(f"cannot read {what} {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise DecodeError(f"{what} {path} is not UTF-8 text") from e


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise DecodeError(f"{what} is not JSON: {e}", detail={"rule": "syntax"}) from e


def _read_json(path: str, what: str) -> Any:
    return _parse_json(_read_text(path, what), f"{what} {path}")


def load_signing_key(path: str) -> SigningKey:
    """The signing key in a key file written by ``cid keygen``."""
    value = _read_json(path, "key file")
    try:
        return SigningKey.from_file_value(value)
    except CidError as e:
        raise e.__class__(f"key file {path}: {e.message}", field=e.field, detail=e.detail) from e


def _public_key_of(item: Any, where: str) -> PublicKey:
    if isinstance(item, dict) and "seed" in item:
        return SigningKey.from_file_value(item).public_key
    if not isinstance(item, dict):
        raise DecodeError(f"{where}: a public key is an object {{alg, pub}}", field=where)
    key = validate(PublicKey, {"alg": item.get("alg"), "pub": item.get("pub")}, where=where)
    if "kid" in item and item["kid"] != key.kid:
        raise DecodeError(f"{where}: kid {item['kid']!r} is not the key's id {key.kid}")
    return key


def load_public_keys(spec: str) -> list[PublicKey]:
    """Public keys from a file or literal.

    ``spec`` is a path to a key file (its public half is used), a ``cid pubkey``
    output ``{"alg", "pub", "kid"}`` or a JSON list of those; or that JSON
    written inline; or a bare base64url Ed25519 public key.
    """
    if spec != "-" and not Path(spec).exists() and not spec.lstrip().startswith(("{", "[")):
        if len(spec) == 43 and "/" not in spec:
            return [validate(PublicKey, {"alg": "ed25519", "pub": spec}, where="pub")]
        raise DecodeError(f"cannot read {spec}: no such key file, and not a base64url public key")
    if spec.lstrip().startswith(("{", "[")) and not Path(spec).exists():
        value = _parse_json(spec, "public key")
    else:
        value = _read_json(spec, "public key file")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise DecodeError(f"{spec}: no keys")
    return [_public_key_of(item, f"key[{i}]") for i, item in enumerate(items)]


def _keys_of(specs: Sequence[str]) -> list[PublicKey]:
    seen: dict[str, PublicKey] = {}
    for spec in specs:
        for key in load_public_keys(spec):
            seen.setdefault(key.kid, key)
    return list(seen.values())


def _json_arg(text: str, what: str) -> Any:
    """``@FILE`` or inline JSON."""
    if text.startswith("@"):
        return _read_json(text[1:], what)
    return _parse_json(text, what)


# --- signing and delivery -------------------------------------------------------------------


def _now() -> int:
    return int(time.time())


def _sign(
    body: WireModel, *, name: str | Identifier, key: SigningKey, serial: int, ttl_s: int, now: int
) -> Envelope:
    """REQ-SIG-031: ``nbf`` a minute before now (skew), ``exp`` after the requested validity."""
    return sign_record(
        body, name=name, serial=serial, key=key, nbf=now - NBF_SLACK_S, exp=now + ttl_s
    ).envelope


def _write_file(path: str, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path``; failing that, the typed decode error."""
    try:
        Path(path).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as e:
        raise DecodeError(f"cannot write {path}: {e.strerror or e}") from e


def _write_output(path: str, text: str, stdout: TextIO) -> None:
    """``text`` to the file ``path``, or to ``stdout`` when ``path`` is ``-``."""
    if path == "-":
        stdout.write(text)
    else:
        _write_file(path, text)


def _write_signed(
    out: Output, path: str, envelopes: Sequence[Envelope], value: Any, message: str
) -> int:
    """Write signed records to ``--out`` (NDJSON for ``.ndjson``/``.jsonl``, else JSON), then
    report ``value`` unless they went to stdout."""
    values = [e.to_value() for e in envelopes]
    if path.endswith((".ndjson", ".jsonl")):
        text = "".join(_dumps(v) + "\n" for v in values)
    else:
        text = _document(_one_or_list(values))
    _write_output(path, text, out.stdout)
    if path != "-":
        out.emit(value, message)
    return EXIT_OK


def _accepted_text(a: dict[str, Any]) -> str:
    state = f"rseq {a['rseq']}" if "rseq" in a else "unchanged: already held"
    return (
        f"accepted {a.get('op')} {a.get('type')} {a.get('name')} serial {a.get('serial')} ({state})"
    )


@asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(args.registry, timeout_s=args.timeout) as client:
        yield client


async def _deliver(
    args: argparse.Namespace,
    out: Output,
    envelope: Envelope,
    what: str,
    client: RegistryClient | None = None,
) -> int:
    """Write the signed record to ``--out``, or submit it to the registry (through ``client``
    when one is open) and report its acceptance."""
    if args.out:
        name, serial, digest = (
            envelope.header.sub.to_text(),
            envelope.header.serial,
            envelope.digest(),
        )
        value = {
            "out": args.out,
            "name": name,
            "typ": envelope.typ,
            "serial": serial,
            "digest": digest,
        }
        message = f"wrote {what} of {name} (serial {serial}, digest {digest}) to {args.out}"
        return _write_signed(out, args.out, [envelope], value, message)
    if client is None:
        async with _client(args) as opened:
            return await _deliver(args, out, envelope, what, opened)
    accepted = await client.submit(envelope)
    out.emit(accepted, lambda: _accepted_text(accepted))
    return EXIT_OK


async def _sign_and_deliver(
    args: argparse.Namespace,
    out: Output,
    key: SigningKey,
    body: WireModel,
    *,
    rtype: str,
    what: str,
    ttl_s: int,
) -> int:
    """Sign ``body`` at ``args.name`` and deliver it (:func:`_deliver`).

    The serial is ``--serial``, else now, raised above the serial the registry
    holds for ``(name, rtype)``.
    """
    now = _now()
    held = await _held_serial(args, args.name, rtype)
    env = _sign(
        body, name=args.name, key=key, serial=_serial(args, now, held), ttl_s=ttl_s, now=now
    )
    return await _deliver(args, out, env, what)


async def _held_serial(args: argparse.Namespace, name: str, rtype: str) -> int | None:
    """The serial the registry holds for ``(name, rtype)``, so that a default serial exceeds it.

    ``None`` when ``--serial`` is given, when signing offline (``--out``) or when
    the registry holds nothing at ``name``.
    """
    if args.serial is not None or args.out:
        return None
    async with _client(args) as client:
        try:
            resp = await _resolved(client, name)
        except NotFoundError:
            return None
    return _held_in(resp, name, rtype)


def _held_in(resp: ResolveResponse, name: str, rtype: str) -> int | None:
    """The highest serial of ``(name, rtype)`` in a resolve answer, ``None`` if it has none.

    An offer's serial sequence includes its refreshes (REQ-REC-060).
    """
    envs = [*resp.envelopes(), *(Envelope.from_value(v) for v in resp.proof)]
    if resp.referral is not None:
        envs.append(Envelope.from_value(resp.referral.delegation))
    wanted = {rtype, "refresh"} if rtype == "offer" else {rtype}
    ident = Identifier.parse(name)
    return max(
        (
            e.header.serial
            for e in envs
            if e.header.sub == ident and record_type_of(e.typ) in wanted
        ),
        default=None,
    )


def _serial(args: argparse.Namespace, now: int, held: int | None = None) -> int:
    if args.serial is not None:
        return int(args.serial)
    return now if held is None else max(now, held + 1)


# --- commands: keys -------------------------------------------------------------------------


async def cmd_keygen(args: argparse.Namespace, out: Output) -> int:
    key = SigningKey.generate()
    text = json.dumps(key.to_file_value(), indent=2) + "\n"
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if args.force else os.O_EXCL)
    try:
        fd = os.open(args.file, flags, 0o600)
    except FileExistsError as e:
        raise DecodeError(
            f"{args.file} exists; pass --force to overwrite it", detail={"rule": "exists"}
        ) from e
    except OSError as e:
        raise DecodeError(f"cannot create {args.file}: {e.strerror or e}") from e
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)
    value = {"file": args.file, "alg": key.alg, "kid": key.kid, "pub": key.public_key.pub}
    out.emit(
        value,
        lambda: (
            f"wrote {args.file} (mode 0600)\n"
            + table(["alg", "kid", "pub"], [[key.alg, key.kid, key.public_key.pub]])
        ),
    )
    return EXIT_OK


async def cmd_pubkey(args: argparse.Namespace, out: Output) -> int:
    keys = load_public_keys(args.file)
    values = [{"alg": k.alg, "pub": k.pub, "kid": k.kid} for k in keys]
    out.stdout.write(_document(_one_or_list(values)))
    return EXIT_OK


# --- commands: authority records ------------------------------------------------------------


async def cmd_delegate(args: argparse.Namespace, out: Output) -> int:
    key = load_signing_key(args.key)
    keys = _keys_of(args.to)
    body = validate(
        DelegationBody,
        {"keys": [k.to_value() for k in keys], "registries": list(args.registry_url or [])},
        where="delegation",
    )
    return await _sign_and_deliver(
        args, out, key, body, rtype="delegation", what="delegation", ttl_s=args.days * 86_400
    )


def _kids_of(specs: Sequence[str]) -> list[str]:
    kids: list[str] = []
    for spec in specs:
        if len(spec) == _KID_LENGTH and not Path(spec).exists():
            kids.append(spec)
        else:
            kids.extend(k.kid for k in load_public_keys(spec))
    return list(dict.fromkeys(kids))


async def cmd_rotate(args: argparse.Namespace, out: Output) -> int:
    key = load_signing_key(args.key)
    body = validate(
        KeyRotationBody,
        {"keys": [k.to_value() for k in _keys_of(args.new)], "revoked": _kids_of(args.revoke)},
        where="keyrotation",
    )
    return await _sign_and_deliver(
        args, out, key, body, rtype="keyrotation", what="key rotation", ttl_s=args.days * 86_400
    )


async def cmd_zone(args: argparse.Namespace, out: Output) -> int:
    key = load_signing_key(args.key)
    value: dict[str, Any] = {
        "display_name": args.display_name,
        "service_keys": [k.to_value() for k in _keys_of(args.service_key)],
    }
    endpoints = {k: v for k, v in (("negotiate", args.negotiate), ("invoke", args.invoke)) if v}
    if endpoints:
        value["endpoints"] = endpoints
    if args.org:
        contact = {"org": args.org, "email": args.email, "url": args.contact_url}
        value["contact"] = {k: v for k, v in contact.items() if v}
    elif args.email or args.contact_url:
        raise UsageError("--email and --contact-url need --org")
    body = validate(ZoneBody, value, where="zone")
    return await _sign_and_deliver(
        args, out, key, body, rtype="zone", what="zone", ttl_s=args.days * 86_400
    )


# --- commands: offers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OfferItem:
    where: str
    name: Identifier
    offer: OfferBody
    serial: int | None


def _read_documents(path: str) -> list[tuple[str, Any]]:
    """``(where, value)`` for each document of a JSON file (an object or a list) or NDJSON."""
    text = _read_text(path, "input file")
    ndjson = path.endswith((".ndjson", ".jsonl"))
    if not ndjson:
        try:
            value = json.loads(text)
        except ValueError:
            ndjson = len(text.strip().splitlines()) > 1
            if not ndjson:
                _parse_json(text, f"input file {path}")  # raises the decode error
        else:
            if isinstance(value, list):
                return [(f"item {i}", v) for i, v in enumerate(value)]
            return [("item 0", value)]
    docs: list[tuple[str, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            docs.append((f"line {n}", _parse_json(line, f"{path} line {n}")))
    return docs


def _located(e: CidError, where: str) -> CidError:
    err = e.__class__(f"{where}: {e.message}", field=e.field, detail={**e.detail, "at": where})
    err.__cause__ = e
    return err


def _offer_item(where: str, value: Any) -> _OfferItem:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise SchemaError(
            f'{where}: an item is {{"name": ..., "offer": {{...}}}}', detail={"rule": "item"}
        )
    extra = set(value) - {"name", "offer", "serial"}
    if extra:
        raise SchemaError(
            f"{where}: unknown member {sorted(extra)[0]!r}", detail={"rule": "extra_forbidden"}
        )
    serial = value.get("serial")
    if serial is not None and (not isinstance(serial, int) or isinstance(serial, bool)):
        raise SchemaError(f"{where}: serial must be an integer", field="serial")
    try:
        name = Identifier.parse(value["name"])
        offer = validate(OfferBody, value.get("offer"), where="offer")
    except CidError as e:
        raise _located(e, where) from e
    return _OfferItem(where, name, offer, serial)


T = TypeVar("T")
Result = dict[str, Any] | CidError


async def _submit_batch_retrying(
    client: RegistryClient, envelopes: list[Envelope], attempts: int = 4
) -> list[Result]:
    for attempt in range(attempts):
        try:
            return await client.submit_batch(envelopes)
        except CidError as e:
            if not e.retryable or attempt == attempts - 1:
                return [e] * len(envelopes)
            await asyncio.sleep(0.25 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


async def submit_bulk(
    client: RegistryClient,
    items: Sequence[T],
    sign: Callable[[T], Envelope],
    *,
    chunk: int,
    concurrency: int,
    progress: Progress,
) -> list[Result]:
    """Sign and submit ``items`` in batches of ``chunk``, ``concurrency`` requests at a time.

    Each result is the acceptance summary or the typed error for that item. A
    batch that fails as a whole with a retryable error (rate limit, unavailable)
    is retried; a retried batch is harmless, since re-submitting the very same
    envelope is idempotent ([REQ-SIG-038]).
    """
    results: list[Result | None] = [None] * len(items)
    starts = list(range(0, len(items), chunk))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for s in starts:
        queue.put_nowait(s)

    async def worker() -> None:
        while not queue.empty():
            start = queue.get_nowait()
            part = items[start : start + chunk]
            envelopes = []
            for i, item in enumerate(part):
                try:
                    envelopes.append(sign(item))
                except CidError as e:  # pragma: no cover - items were validated before
                    results[start + i] = e
            got = await _submit_batch_retrying(client, envelopes)
            j = 0
            for i in range(len(part)):
                if results[start + i] is None:
                    results[start + i] = got[j]
                    j += 1
            progress.advance(len(part))

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(starts))))))
    progress.finish()
    return [r if r is not None else InternalError("no result") for r in results]


async def _submit_and_report(
    args: argparse.Namespace,
    out: Output,
    items: Sequence[T],
    sign: Callable[[T], Envelope],
    names: Sequence[str],
    *,
    label: str,
    unit: str,
) -> int:
    """Submit ``items`` (``--chunk``, ``--concurrency``) with progress, then the report."""
    progress = Progress(out, label, len(items), unit)
    async with _client(args) as client:
        results = await submit_bulk(
            client, items, sign, chunk=args.chunk, concurrency=args.concurrency, progress=progress
        )
    return _bulk_report(out, names, results)


def _bulk_report(out: Output, names: Sequence[str], results: Sequence[Result]) -> int:
    failed = [(n, r) for n, r in zip(names, results, strict=True) if isinstance(r, CidError)]
    oks = [r for r in results if not isinstance(r, CidError)]
    for name, err in failed[:20]:
        out.error(err, prefix=f"{name}: ", to_stdout=False)
    if len(failed) > 20:
        out.stderr.write(f"... and {len(failed) - 20} more errors\n")
    value = {
        "total": len(results),
        "accepted": len(oks),
        "failed": len(failed),
        "results": [
            {"name": n, "error": r.to_wire()} if isinstance(r, CidError) else {"name": n, "ok": r}
            for n, r in zip(names, results, strict=True)
        ],
    }

    def human() -> str:
        lines = []
        if len(results) <= 20 and oks:
            lines.append(
                table(
                    ["NAME", "TYPE", "OP", "SERIAL", "RSEQ"],
                    [
                        [r["name"], r["type"], r["op"], r["serial"], r.get("rseq", "unchanged")]
                        for r in oks
                    ],
                )
            )
        new = sum(1 for r in oks if "rseq" in r)
        lines.append(
            f"accepted {len(oks)} of {len(results)} ({new} new, {len(oks) - new} unchanged)"
            + (f", {len(failed)} refused" if failed else "")
        )
        return "\n".join(lines)

    out.emit(value, human)
    return EXIT_ERROR if failed else EXIT_OK


async def cmd_register(args: argparse.Namespace, out: Output) -> int:
    key = load_signing_key(args.key)
    items = [_offer_item(where, value) for where, value in _read_documents(args.file)]
    if not items:
        raise SchemaError(f"{args.file} holds no offers", detail={"rule": "empty"})
    now = _now()
    serial = _serial(args, now)

    def sign(item: _OfferItem) -> Envelope:
        s = item.serial if item.serial is not None else serial
        return _sign(item.offer, name=item.name, key=key, serial=s, ttl_s=args.ttl, now=now)

    if args.out:
        value = {"out": args.out, "records": len(items)}
        message = f"wrote {len(items)} signed offer(s) to {args.out}"
        return _write_signed(out, args.out, [sign(i) for i in items], value, message)
    names = [i.name.to_text() for i in items]
    return await _submit_and_report(args, out, items, sign, names, label="register", unit="offers")


async def cmd_submit(args: argparse.Namespace, out: Output) -> int:
    envelopes: list[Envelope] = []
    for path in args.files:
        for where, value in _read_documents(path):
            try:
                envelopes.append(Envelope.from_value(value))
            except CidError as e:
                raise _located(e, f"{path} {where}") from e
    if not envelopes:
        raise SchemaError("no envelopes to submit", detail={"rule": "empty"})
    names = [e.header.sub.to_text() for e in envelopes]
    return await _submit_and_report(
        args, out, envelopes, lambda e: e, names, label="submit", unit="records"
    )


async def _resolved(client: RegistryClient, name: str) -> ResolveResponse:
    return validate(ResolveResponse, await client.resolve(name), where="answer")


async def cmd_refresh(args: argparse.Namespace, out: Output) -> int:
    key = load_signing_key(args.key)
    async with _client(args) as client:
        resp = await _resolved(client, args.name)
        envs = resp.envelopes()
        offer = next((e for e in envs if e.typ == "cid.record.offer"), None)
        if offer is None:
            raise NotFoundError(f"no offer at {args.name} to refresh", field="name")
        # REQ-REC-060: a refresh continues the offer's serial sequence and names its version.
        held = _held_in(resp, args.name, "offer")
        body = validate(
            RefreshBody, {"base": offer.digest(), "units_free": args.units_free}, where="refresh"
        )
        now = _now()
        env = _sign(
            body, name=args.name, key=key, serial=_serial(args, now, held), ttl_s=args.ttl, now=now
        )
        return await _deliver(args, out, env, "refresh", client)


async def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    key = load_signing_key(args.key)
    body = validate(TombstoneBody, {"target": args.type}, where="tombstone")
    # REQ-REC-051: a tombstone's serial must exceed the held record's.
    return await _sign_and_deliver(
        args, out, key, body, rtype=args.type, what="tombstone", ttl_s=args.ttl
    )


# --- commands: queries ----------------------------------------------------------------------


def _record_summary(env: Envelope) -> str:
    body = env.body_value
    rtype = record_type_of(env.typ)
    if rtype == "offer":
        avail = body.get("availability", {})
        price = body.get("price", {})
        items = ", ".join(
            f"{i.get('amount')}/{i.get('resource')}/{i.get('per')}" for i in price.get("items", [])
        )
        region = body.get("location", {}).get("region", "?")
        return (
            f"{body.get('class')} {region} {body.get('title', '')!r}; "
            f"{avail.get('units_free')}/{avail.get('units_total')} free; "
            f"{price.get('currency')} {items}"
        )
    if rtype == "refresh":
        return f"units_free {body.get('units_free')} (base {str(body.get('base'))[:12]}...)"
    if rtype == "zone":
        return f"{body.get('display_name')!r}, {len(body.get('service_keys', []))} service key(s)"
    if rtype in ("delegation", "keyrotation"):
        kids = ", ".join(PublicKey.model_validate(k).kid for k in body.get("keys", []))
        return f"keys {kids}"
    if rtype == "tombstone":
        return f"deletes {body.get('target')}"
    return ""


def verify_answer(
    resp: ResolveResponse, root_keys: Sequence[PublicKey], now: int
) -> list[Envelope]:
    """What a resolver does: the proof from the trust anchor down, then each record.

    Raises the typed :class:`~cid.errors.VerificationError` of the first check that fails.
    """
    trust = TrustState(root_keys)
    for value in resp.proof:
        trust.add(Envelope.from_value(value), now=now)
    if resp.referral is not None:
        trust.add(Envelope.from_value(resp.referral.delegation), now=now)
    envs = list(resp.envelopes())
    for env in envs:
        trust.verify(env, now=now)
    offer = next((e for e in envs if e.typ == "cid.record.offer"), None)
    for env in envs:
        # REQ-REC-060: a refresh applies only to the offer version it names.
        if env.typ == "cid.record.refresh" and (
            offer is None or env.body_value.get("base") != offer.digest()
        ):
            raise VerificationError(
                "refresh for another version of the offer", field="records", detail={"rule": "base"}
            )
    return envs


async def cmd_resolve(args: argparse.Namespace, out: Output) -> int:
    name = Identifier.parse(args.name)
    roots = _keys_of(args.root_key or [])
    async with _client(args) as client:
        answer = await client.resolve(name)
    resp = validate(ResolveResponse, answer, where="answer")
    if resp.name != name:
        raise VerificationError(
            f"the answer is for {resp.name}, not {name}", field="name", detail={"rule": "name"}
        )
    verified = False
    if roots:
        verify_answer(resp, roots, _now())
        verified = True
    value = {**answer, "verified": verified}

    def human() -> str:
        lines = [f"name  {resp.name}"]
        if resp.referral is not None:
            lines.append(
                f"referral: {resp.referral.namespace} is served at "
                + ", ".join(str(u) for u in resp.referral.registries)
            )
        rows = [
            [
                record_type_of(e.typ),
                e.header.serial,
                e.sigs[0].kid,
                _iso(e.header.exp),
                _record_summary(e),
            ]
            for e in resp.envelopes()
        ]
        if rows:
            lines.append(table(["TYPE", "SERIAL", "SIGNER", "EXPIRES", "SUMMARY"], rows))
        chain = [f"{record_type_of(p['header']['typ'])} {p['header']['sub']}" for p in resp.proof]
        lines.append("proof: " + (", ".join(chain) if chain else "(none: the root governs)"))
        if verified:
            lines.append(
                "verified from the trust anchor ("
                + ", ".join(k.kid for k in roots)
                + f"): {len(chain)} proof record(s), {len(rows)} record(s)"
            )
        else:
            lines.append("not verified (pass --root-key to verify from the trust anchor)")
        return "\n".join(lines)

    out.emit(value, human)
    return EXIT_OK


async def cmd_list(args: argparse.Namespace, out: Output) -> int:
    items: list[dict[str, Any]] = []
    cursor: str | None = args.cursor
    async with _client(args) as client:
        while True:
            page = await client.list_namespace(args.namespace, cursor=cursor, limit=args.limit)
            items.extend(page.get("items", []))
            cursor = page.get("next_cursor")
            if not args.all or not cursor:
                break
    value: dict[str, Any] = {"items": items}
    if cursor:
        value["next_cursor"] = cursor

    def human() -> str:
        lines = [
            table(
                ["NAME", "TYPE", "SERIAL", "DIGEST"],
                [[i["name"], i["type"], i["serial"], i["digest"]] for i in items],
            )
            if items
            else f"no records under {args.namespace}"
        ]
        if cursor:
            lines.append(f"more: --cursor {cursor}   (or --all)")
        else:
            lines.append(f"{len(items)} record(s)")
        return "\n".join(lines)

    out.emit(value, human)
    return EXIT_OK


def build_query(text: str | None, query_json: str | None) -> Query:
    """The query of ``cid search``: textual (``cid.query_text``) or JSON."""
    if text is not None and query_json is not None:
        raise UsageError("give a textual query or --query-json, not both")
    if query_json is not None:
        return validate(Query, _json_arg(query_json, "query"), where="query")
    if text is None:
        raise UsageError("give a query (text) or --query-json")
    return query_text.parse(text)


def _rtt(us: Any) -> str | None:
    return None if us is None else f"{int(us) / 1000:.1f} ms"


async def cmd_search(args: argparse.Namespace, out: Output) -> int:
    query = build_query(args.query, args.query_json)
    if args.limit is not None or args.cursor is not None:
        value = query.to_value()
        if args.limit is not None:
            value["limit"] = args.limit
        if args.cursor is not None:
            value["cursor"] = args.cursor
        query = validate(Query, value, where="query")
    async with _client(args) as client:
        result = await client.search(query)
    matches = result.get("results", [])

    def human() -> str:
        if not matches:
            return "no offers match"
        rows = [
            [
                rank,
                m["name"],
                f"{m['cost']['total']} {m['cost']['currency']}",
                m["cost"].get("units"),
                _rtt(m.get("rtt_us")),
                m.get("score"),
            ]
            for rank, m in enumerate(matches, start=1)
        ]
        text = table(["RANK", "NAME", "TOTAL", "UNITS", "RTT", "SCORE"], rows)
        if result.get("next_cursor"):
            text += f"\nmore: --cursor {result['next_cursor']}"
        return text

    out.emit(result, human)
    return EXIT_OK


# --- commands: feed and snapshot ------------------------------------------------------------


def _verify_head(head_value: Any, typ: str, service_keys: Sequence[PublicKey]) -> Envelope:
    head = Envelope.from_value(head_value)
    if service_keys:
        head.verify({k.kid: k for k in service_keys}, typ=typ, now=_now())
    return head


async def cmd_snapshot(args: argparse.Namespace, out: Output) -> int:
    service_keys = _keys_of(args.service_key or [])
    shown: list[Progress] = []

    def advance(n: int, total: int | None) -> None:
        if not shown:
            shown.append(Progress(out, "snapshot", total, "bytes"))
        shown[0].advance(n)

    async with _client(args) as client:
        value = await client.snapshot(
            timeout_s=args.timeout_snapshot, encoding="msgpack", progress=advance
        )
    if shown:
        shown[0].finish()
    if not isinstance(value, dict) or "head" not in value or "records" not in value:
        raise SchemaError("not a snapshot", detail={"rule": "snapshot"})
    head = _verify_head(value["head"], SNAPSHOT_TYP, service_keys)
    body = validate(SnapshotHead, head.body_value, where="head.body")
    records = value["records"]
    # REQ-FEED-010: the signed digest covers every live record; recompute it.
    entries = []
    for r in records:
        env = Envelope.from_value(r["envelope"])
        entries.append((env.header.sub, env.typ.rsplit(".", 1)[1], env.digest()))
    if body.records != len(records) or body.digest != compute_snapshot_digest(entries):
        raise HeadMismatchError(
            "the snapshot's records do not match its signed head", detail={"rseq": body.rseq}
        )
    data = codec.encode(value, "json")
    if args.out == "-":
        out.write(data.decode("utf-8") + "\n")
        return EXIT_OK
    _write_file(args.out, data)
    summary = {
        "out": args.out,
        "rseq": body.rseq,
        "records": body.records,
        "digest": body.digest,
        "bytes": len(data),
        "head_signature_verified": bool(service_keys),
    }
    out.emit(
        summary,
        lambda: (
            f"wrote snapshot at rseq {body.rseq}: {body.records} record(s), "
            f"{len(data)} bytes, digest {body.digest} (checked"
            + (", head signature verified" if service_keys else "")
            + f") to {args.out}"
        ),
    )
    return EXIT_OK


async def cmd_feed(args: argparse.Namespace, out: Output) -> int:
    service_keys = _keys_of(args.service_key or [])
    since: int = args.since
    # REQ-FEED-001: from serial 0 the hash chain can be recomputed and checked against each head.
    chain: str | None = CHAIN_ZERO if since == 0 else None
    count = 0
    printed_header = False
    async with _client(args) as client:
        caught_up = False
        while True:
            wait = args.wait if (args.follow and caught_up) else 0
            page = await client.feed(since, limit=args.limit, wait_s=wait)
            changes = page.get("changes", [])
            stopped = False
            for change in changes:
                env = Envelope.from_value(change["envelope"])
                if chain is not None:
                    chain = chain_step(chain, change["rseq"], env.encode("msgpack"))
                since = change["rseq"]
                count += 1
                if out.json:
                    out.line({**change, "serial": env.header.serial})
                else:
                    if not printed_header:
                        out.write(f"{'RSEQ':>8}  {'OP':<7}  {'TYPE':<11}  SERIAL      NAME\n")
                        printed_header = True
                    out.write(
                        f"{change['rseq']:>8}  {change['op']:<7}  {change['type']:<11}  "
                        f"{env.header.serial:<10}  {change['name']}\n"
                    )
                if args.max_changes and count >= args.max_changes:
                    stopped = True
                    break
            if not stopped:
                head = _verify_head(page["head"], FEED_HEAD_TYP, service_keys)
                at_head = head.body_value.get("rseq") == since
                if chain is not None and at_head and head.body_value.get("chain") != chain:
                    raise HeadMismatchError(
                        f"the feed's hash chain does not match its signed head at {since}",
                        detail={"rseq": since},
                    )
            if stopped:
                break
            was_caught_up = caught_up
            caught_up = not changes or len(changes) < args.limit
            if caught_up and not args.follow:
                break
            if caught_up and not was_caught_up:
                out.note(f"feed: following from rseq {since}; Ctrl-C to stop")
    checked = "chain checked" if chain is not None else "chain not checked (since > 0)"
    out.note(f"feed: {count} change(s), now at rseq {since}; {checked}")
    return EXIT_OK


async def cmd_registry(args: argparse.Namespace, out: Output) -> int:
    raise UsageError("use: cid registry serve|check ... (runs cid-registry)")


# --- commands: negotiate, invoke, receipts (the requester's side) ---------------------------

_DURATION_UNITS: Final[dict[str, int]] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3_600,
    "hour": 3_600,
    "d": 86_400,
    "day": 86_400,
    "w": 604_800,
    "week": 604_800,
    "month": 2_628_000,
    "mo": 2_628_000,
    "y": 31_536_000,
    "year": 31_536_000,
}


def parse_duration(text: str) -> int:
    """``3months``, ``90d``, ``12h``, ``3600`` (seconds) → seconds; a month is 730 hours."""
    m = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]*)\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 3months or 12h")
    unit = m.group(2).lower()
    if unit.endswith("s") and unit[:-1] in _DURATION_UNITS and unit not in ("s",):
        unit = unit[:-1]
    factor = _DURATION_UNITS.get(unit or "s")
    if factor is None:
        raise argparse.ArgumentTypeError(f"unknown duration unit {m.group(2)!r}")
    seconds = int(m.group(1)) * factor
    if seconds < 1:
        raise argparse.ArgumentTypeError("a duration is at least one second")
    return seconds


def parse_price(text: str) -> MaxPrice:
    """``40CNY``, ``40 CNY`` or ``CNY 40.5`` → a :class:`MaxPrice`."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]{3})\s*", text) or re.fullmatch(
        r"\s*([A-Za-z]{3})\s*([0-9]+(?:\.[0-9]+)?)\s*", text
    )
    if m is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a price such as 40CNY")
    amount, currency = (
        (m.group(1), m.group(2)) if m.group(1)[0].isdigit() else (m.group(2), m.group(1))
    )
    return MaxPrice(currency=currency.upper(), total=Decimal(amount))


def _root_keys(args: argparse.Namespace) -> list[PublicKey]:
    specs = list(args.root_key or [])
    if not specs and os.environ.get("CID_ROOT_KEYS"):
        specs = [os.environ["CID_ROOT_KEYS"]]
    if not specs:
        raise UsageError("give the trust anchor: --root-key FILE (or CID_ROOT_KEYS)")
    return _keys_of(specs)


@asynccontextmanager
async def _requester(
    args: argparse.Namespace, trace: Callable[[str, Envelope], None] | None = None
) -> AsyncIterator[Requester]:
    key = load_signing_key(args.key)
    async with (
        Resolver([args.registry], _root_keys(args), timeout_s=args.timeout) as resolver,
        Requester(key, resolver, timeout_s=args.timeout, trace=trace) as req,
    ):
        yield req


def _read_envelope(path: str, what: str) -> Envelope:
    return Envelope.from_value(_read_json(path, what))


def _breakdown(price: dict[str, Any]) -> str:
    items = " + ".join(
        f"{i['resource']} {i['quantity']} x {i['amount']}/{i['per']} = {i['cost']}"
        for i in price.get("items", [])
    )
    return f"{price['total']} {price['currency']} ({items})"


async def cmd_negotiate(args: argparse.Namespace, out: Output) -> int:
    now = _now()
    resources = None
    if any(v for v in (args.vcpu, args.memory_gib, args.storage_gib, args.accelerators)):
        resources = ResourceDemand(
            vcpu=args.vcpu or 0,
            memory_mib=(args.memory_gib or 0) * 1024,
            storage_gib=args.storage_gib or 0,
            accelerators=args.accelerators or 0,
            units=args.quantity,
        )

    def trace(what: str, env: Envelope) -> None:
        b = env.body_value
        if what == "demand":
            out.note(
                f"demand sent to {env.header.aud}: {b['quantity']} unit(s), {b['duration_s']} s"
            )
        elif what in ("quote", "counter"):
            out.note(f"{what} {b['quote_id']} verified: {_breakdown(b['price'])}")
        elif what == "agreement":
            out.note(f"agreement {b['agreement_id']} signed by the provider; co-signing")

    async with _requester(args, trace) as req:
        envelope = await req.negotiate(
            args.offer,
            quantity=args.quantity,
            duration_s=args.duration,
            start_after=now,
            start_before=now + args.start_within,
            max_price=args.max_price,
            resources=resources,
            accept_counter=(lambda _c: True) if args.accept_counter else None,
        )
    body = envelope.body_value
    _write_output(args.out, _document(envelope.to_value()), out.stdout)
    if args.out == "-":
        return EXIT_OK
    value = {
        "out": args.out,
        "agreement_id": body["agreement_id"],
        "provider": body["provider"],
        "offer": body["offer"],
        "start": body["start"],
        "end": body["end"],
        "price": body["price"],
        "limits": body["limits"],
    }
    out.emit(
        value,
        lambda: (
            f"agreement {body['agreement_id']} with {body['provider']} for {body['offer']}\n"
            f"  {_iso(body['start'])} .. {_iso(body['end'])}, {_breakdown(body['price'])}\n"
            f"  signed by both parties; written to {args.out}"
        ),
    )
    return EXIT_OK


def _output_section(title: str, data: bytes) -> list[str]:
    """A task's output stream between rules, as text; nothing when it is empty."""
    if not data:
        return []
    return [f"--- {title} ---", data.decode("utf-8", errors="replace").rstrip("\n"), "---"]


async def cmd_invoke(args: argparse.Namespace, out: Output) -> int:
    command = list(args.argv)
    if not command:
        raise UsageError("give the command after --, e.g. cid invoke a.json --key k -- echo hi")
    env_vars: dict[str, str] = {}
    for item in args.env or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--env {item!r} is not NAME=VALUE")
        env_vars[name] = value
    agreement_env = _read_envelope(args.agreement, "agreement")
    async with _requester(args) as req:
        agreement, provider = await req.open_agreement(agreement_env)
        lim = agreement.limits
        limits = lim.model_copy(
            update={
                k: v
                for k, v in (
                    ("cpu_s", args.cpu_s),
                    ("memory_mib", args.memory_mib),
                    ("wall_s", args.wall_s),
                )
                if v is not None
            }
        )
        task = req.task(agreement, command, limits=limits, env=env_vars)
        task_id = await req.submit(req.sign_task(agreement, task), agreement, provider)
        out.note(f"task {task_id} submitted to {provider.namespace} ({provider.invoke_url})")
        last = None
        async for status in req.events(task_id):
            last = status
            if out.json:
                out.line({"status": status.to_value()})
            else:
                extra = [f"exit {status.exit_code}"] if status.exit_code is not None else []
                if status.reason:
                    extra.append(status.reason)
                out.write(
                    f"{_iso(int(time.time()))}  {status.state}"
                    + (f" ({', '.join(extra)})" if extra else "")
                    + "\n"
                )
        if last is None or last.state not in TASK_TERMINAL_STATES:
            last = await req.wait(task_id)
        outcome = await req.result(task_id)
        stdout = await req.output(task_id, ":stdout")
        stderr = await req.output(task_id, ":stderr") if last.state != "succeeded" else b""
        saved: list[str] = []
        if args.out_dir:
            base = Path(args.out_dir)
            for o in outcome.result.outputs:
                data = await req.output(task_id, o.path)
                target = base / o.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                saved.append(str(target))
    r = outcome.receipt
    receipt_path: str | None = None
    if outcome.receipt_envelope is not None:
        receipt_path = args.receipt or f"receipt-{task_id[:12]}.json"
        Path(receipt_path).write_text(
            _document(outcome.receipt_envelope.to_value()), encoding="utf-8"
        )
    value = {
        "task_id": task_id,
        "state": last.state,
        "exit_code": last.exit_code,
        "reason": last.reason,
        "outputs": [o.to_value() for o in outcome.result.outputs],
        "saved": saved,
        "receipt": receipt_path,
        "usage": None if r is None else r.usage.to_value(),
        "cost": None if r is None else r.cost.to_value(),
    }

    def human() -> str:
        lines = [
            *_output_section("stdout (sha256 verified)", stdout),
            *_output_section("stderr (last 2000 bytes, sha256 verified)", stderr[-2000:]),
        ]
        for o in outcome.result.outputs:
            lines.append(f"output {o.path}: {o.size_bytes} B sha256 {o.sha256}")
        lines.extend(f"saved {s}" for s in saved)
        if r is None:
            lines.append(f"no receipt: the task never started ({last.state}, {last.reason})")
        else:
            lines.append(
                f"receipt verified: {r.usage.cpu_s} cpu-s, {r.usage.wall_s} s wall, "
                f"{r.usage.memory_mib_s} MiB*s; cost {r.cost.total} {r.cost.currency}; "
                f"written to {receipt_path}"
            )
        return "\n".join(lines)

    out.emit(value, human)
    return EXIT_OK if last.state == "succeeded" else EXIT_ERROR


def _parties_error(message: str) -> VerificationError:
    """An agreement not signed by exactly its two parties."""
    return VerificationError(message, field="sigs", detail={"rule": "parties"})


async def cmd_receipt(args: argparse.Namespace, out: Output) -> int:
    if args.action != "verify":  # pragma: no cover - argparse restricts it
        raise UsageError("use: cid receipt verify RECEIPT --agreement FILE --service-key PUB")
    now = args.now if args.now is not None else _now()
    service_keys = {k.kid: k for k in _keys_of(args.service_key)}
    agreement_env = _read_envelope(args.agreement, "agreement")
    requester_checked = False
    if args.requester_key:
        (requester,) = load_public_keys(args.requester_key)[:1]
        agreement = verify_agreement(
            agreement_env, provider_keys=service_keys, requester_key=requester, now=now
        )
        requester_checked = True
    else:
        # the provider's signature alone; the requester's needs its public key
        provider_sigs = tuple(s for s in agreement_env.sigs if s.kid in service_keys)
        if len(provider_sigs) != 1 or len(agreement_env.sigs) != 2:
            raise _parties_error("an agreement carries one provider signature and the requester's")
        partial = Envelope(
            agreement_env.header,
            agreement_env.header_value,
            agreement_env.body_value,
            provider_sigs,
        )
        partial.verify(service_keys, typ="cid.neg.agreement", now=now)
        agreement = validate(Agreement, agreement_env.body_value, where="agreement.body")
        requester_sig = next(s for s in agreement_env.sigs if s.kid not in service_keys)
        if requester_sig.kid != agreement.requester.kid:
            raise _parties_error("the agreement's second signature is not its requester's")
    receipt_env = _read_envelope(args.receipt_file, "receipt")
    receipt = verify_receipt(receipt_env, agreement, service_keys=service_keys, now=now)
    value = {
        "valid": True,
        "task_id": receipt.task_id,
        "agreement_id": receipt.agreement_id,
        "signer": receipt_env.sigs[0].kid,
        "usage": receipt.usage.to_value(),
        "cost": receipt.cost.to_value(),
        "requester_signature_checked": requester_checked,
    }

    def human() -> str:
        u = receipt.usage
        lines = [
            f"receipt valid: task {receipt.task_id} under agreement {receipt.agreement_id}",
            f"  signed by service key {receipt_env.sigs[0].kid}, issued {_iso(receipt.issued)}",
            f"  usage {u.cpu_s} cpu-s, {u.wall_s} s wall, {u.memory_mib_s} MiB*s, "
            f"{u.output_bytes} B out",
            f"  cost {_breakdown(receipt.cost.to_value())} at the agreement's rates",
        ]
        if not requester_checked:
            lines.append("  (the requester's signature on the agreement was not checked: "
                         "pass --requester-key)")  # fmt: skip
        return "\n".join(lines)

    out.emit(value, human)
    return EXIT_OK


# --- the parser -----------------------------------------------------------------------------


def _integer(text: str, least: int, below: str) -> int:
    """``text`` as an integer of at least ``least``; ``below`` says what a smaller one is."""
    try:
        n = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from e
    if n < least:
        raise argparse.ArgumentTypeError(f"{n} {below}")
    return n


def _positive(text: str) -> int:
    return _integer(text, 1, "is not positive")


def _non_negative(text: str) -> int:
    return _integer(text, 0, "is negative")


def _ranged(lo: int, hi: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        n = _positive(text)
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{n} is not within {lo}..{hi}")
        return n

    return convert


_SERIAL_HELP = (
    "record serial; must exceed the serial held for this name and record type (default: the "
    "current Unix time, like a DNS date serial, which grows by itself between runs; raised "
    "to the held serial + 1 when the registry holds a higher one)"
)
_REGISTER_SERIAL_HELP = (
    'serial of every offer without its own "serial" (default: the current Unix time, like '
    "a DNS date serial: it grows by itself between runs; an offer updated twice within one "
    "second needs an explicit, higher --serial)"
)

DESCRIPTION = """\
The cid command line: keys, delegations, zone records and offers for providers and
registry operators; resolve, list, search, snapshot and change feed for everyone;
negotiate, invoke and receipt verification for requesters.

  cid keygen ctyun.key                        # a new Ed25519 key file (mode 0600)
  cid delegate ctyun --key root.key --to ctyun.pub.json        # the operator issues it
  cid zone ctyun --key ctyun.key --display-name "CTyun" --service-key svc.pub.json
  cid register offers.ndjson --key ctyun.key  # one offer or thousands, progress on stderr
  cid refresh gz.ctyun --key ctyun.key --units-free 17
  cid resolve gz.ctyun --root-key root.pub.json                # verified from the anchor
  cid search --query-json '{"class": "general", "limit": 5}'
  cid snapshot --out catalogue.json && cid feed --since 0 --follow
  cid negotiate gz.ctyun --key me.key --root-key root.pub.json --duration 3months \\
      --max-price 40CNY                       # demand, quote, accept, co-signed agreement
  cid invoke agreement.json --key me.key --root-key root.pub.json -- python -c 'print(42)'
  cid receipt verify receipt.json --agreement agreement.json --service-key svc.pub.json

Human-readable tables by default; --json for scripts. Every signed record is valid
from now - 60 s (clock skew) to now + its TTL.
"""

_EPILOG_FLOW = """\
Getting a namespace (the delegation request):
  provider:  cid keygen ctyun.key && cid pubkey ctyun.key > ctyun.pub.json
             (send ctyun.pub.json to the registry operator, or to the parent namespace's owner)
  operator:  cid delegate ctyun --key root.key --to ctyun.pub.json
             (or --out ctyun.delegation.json, and the provider runs: cid submit FILE)
"""


def _common(defaults: bool) -> argparse.ArgumentParser:
    """Options every command takes, before or after the command name."""
    p = argparse.ArgumentParser(add_help=False)

    def default(value: object) -> object:
        # after the command name the options are given only to override the top level's
        return value if defaults else argparse.SUPPRESS

    p.add_argument(
        "--registry",
        metavar="URL",
        default=default(os.environ.get("CID_REGISTRY_URL", DEFAULT_REGISTRY)),
        help="registry base URL [CID_REGISTRY_URL]"
        + (" (default: %(default)s)" if defaults else ""),
    )
    flags: tuple[tuple[tuple[str, ...], str], ...] = (
        (("--json",), 'machine-readable JSON on stdout (errors too: {"error": {...}})'),
        (("-q", "--quiet"), "no progress or remarks on stderr"),
    )
    for names, help_ in flags:
        p.add_argument(*names, action="store_true", default=default(False), help=help_)
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        default=default(30.0),
        help="seconds per registry request (default: 30)",
    )
    return p


def _positional(dest: str, metavar: str) -> argparse.ArgumentParser:
    """A parent parser holding one positional argument (the NAME most commands act on)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(dest, metavar=metavar)
    return p


def _requester_options() -> argparse.ArgumentParser:
    """The requester's key and trust anchor, for ``negotiate`` and ``invoke``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--key", required=True, metavar="KEYFILE", help="the requester's key file")
    _repeatable(p, "--root-key", "the trust anchor (repeatable) [CID_ROOT_KEYS]", "PUBFILE")
    return p


def _signing_options(key_help: str, serial_help: str = _SERIAL_HELP) -> argparse.ArgumentParser:
    """``--key``, ``--serial`` and ``--out`` of the commands that sign a record."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--key", required=True, metavar="KEYFILE", help=key_help)
    p.add_argument("--serial", type=_positive, metavar="N", help=serial_help)
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write the signed record to FILE ('-' for stdout) instead of submitting it",
    )
    return p


def _repeatable(
    p: argparse.ArgumentParser,
    flag: str,
    help_: str,
    metavar: str = "PUB",
    *,
    required: bool = False,
    default: list[str] | None = None,
) -> None:
    """A repeatable option, by default of public keys (``cid pubkey`` output, a key file or a
    base64url key)."""
    p.add_argument(
        flag, action="append", required=required, default=default, metavar=metavar, help=help_
    )


def _limit_option(p: argparse.ArgumentParser, help_: str, default: int | None = None) -> None:
    p.add_argument("--limit", type=_ranged(1, 1000), default=default, metavar="N", help=help_)


def build_parser() -> argparse.ArgumentParser:
    common = _common(defaults=False)
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="cid",
        description=DESCRIPTION,
        epilog=_EPILOG_FLOW
        + "\nExit status: 0 ok, 1 a cid error (printed as 'error NAME (code): message [field]'),"
        " 2 usage error, 130 interrupted.",
        formatter_class=raw,
        parents=[_common(defaults=True)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    named = _positional("name", "NAME")
    file_arg = _positional("file", "FILE")
    requester = _requester_options()

    def add(
        name: str,
        help_: str,
        description: str,
        epilog: str | None = None,
        *,
        handler: Callable[[argparse.Namespace, Output], Coroutine[Any, Any, int]],
        parents: Sequence[argparse.ArgumentParser] = (),
    ) -> Any:
        p = sub.add_parser(
            name,
            help=help_,
            description=description,
            epilog=epilog,
            formatter_class=raw,
            parents=[common, *parents],
        )
        p.set_defaults(handler=handler)
        return p

    def validity(p: argparse.ArgumentParser, default: int, what: str, *, days: bool) -> None:
        """``--days N`` (authority records) or ``--ttl S`` (offers, refreshes, tombstones)."""
        if days:
            flag, metavar, most = "--days", "N", MAX_DAYS
            meaning = f"in days, at most {MAX_DAYS}"
        else:
            flag, metavar, most = "--ttl", "S", MAX_TTL_S
            meaning = "in seconds: exp = now + S, nbf = now - 60"
        p.add_argument(
            flag,
            type=_ranged(1, most),
            default=default,
            metavar=metavar,
            help=f"{what} validity {meaning} (default: {default})",
        )

    def bulk(p: argparse.ArgumentParser) -> None:
        options = (
            ("--chunk", 1000, 500, "records per batch request"),
            ("--concurrency", 64, 4, "batch requests in flight"),
        )
        for flag, most, default, help_ in options:
            p.add_argument(
                flag,
                type=_ranged(1, most),
                default=default,
                metavar="N",
                help=f"{help_} (default: {default})",
            )

    # keys
    p = add(
        "keygen",
        "create an Ed25519 key file",
        "Create a new Ed25519 key file (JSON with the private seed, mode 0600) and print its\n"
        "key id and public key. Keep it secret; share only the output of `cid pubkey`.",
        handler=cmd_keygen,
        parents=[file_arg],
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    p = add(
        "pubkey",
        "print the public half of a key file",
        'Print the public half of a key file as JSON {"alg", "pub", "kid"}: what you send to\n'
        "get a namespace delegated, and what --to, --new, --service-key and --root-key accept.",
        handler=cmd_pubkey,
        parents=[file_arg],
    )

    # authority records
    p = add(
        "delegate",
        "issue a delegation of a namespace (operator or parent owner)",
        "Sign a delegation record giving NAME to the holder(s) of the --to key(s). The signer is\n"
        "the registry operator's root key for a top-level name, else a signing key of the parent\n"
        "namespace. The record is submitted to the registry, or written with --out.",
        _EPILOG_FLOW,
        handler=cmd_delegate,
        parents=[
            named,
            _signing_options("key file of the operator (root) or of the parent namespace"),
        ],
    )
    _repeatable(
        p,
        "--to",
        "the new namespace's anchor key: a `cid pubkey` file, a key file or a base64url "
        "public key (repeatable, up to 8)",
        required=True,
    )
    _repeatable(
        p,
        "--registry-url",
        "the namespace is served by another registry at URL (referral; repeatable)",
        "URL",
    )
    validity(p, 365, "delegation", days=True)

    p = add(
        "rotate",
        "rotate a namespace's signing keys",
        "Sign a key rotation for namespace NAME with one of its anchor keys (those named by its\n"
        "delegation): the --new keys become the namespace's signing keys; --revoke refuses keys\n"
        "at once and for good, also for records they signed before.",
        handler=cmd_rotate,
        parents=[named, _signing_options("an anchor key file of the namespace")],
    )
    _repeatable(p, "--new", "a new signing key (repeatable)", required=True)
    _repeatable(
        p,
        "--revoke",
        "a key id (or public key / key file) to revoke (repeatable)",
        "KID",
        default=[],
    )
    validity(p, 365, "rotation", days=True)

    p = add(
        "zone",
        "publish a namespace's zone record (display name, service keys, endpoints)",
        "Sign and submit the zone record at NAME: the provider's display name, the service keys\n"
        "that sign quotes and agreements, the negotiate/invoke endpoints and a contact.",
        handler=cmd_zone,
        parents=[named, _signing_options("a signing key file of the namespace")],
    )
    p.add_argument("--display-name", required=True, metavar="TEXT")
    _repeatable(p, "--service-key", "repeatable", required=True)
    p.add_argument("--negotiate", metavar="URL", help="negotiate endpoint")
    p.add_argument("--invoke", metavar="URL", help="invoke endpoint")
    p.add_argument("--org", metavar="TEXT", help="contact organisation")
    p.add_argument("--email", metavar="ADDR", help="contact e-mail (needs --org)")
    p.add_argument("--contact-url", metavar="URL", help="contact web page (needs --org)")
    validity(p, 90, "zone record", days=True)

    # offers
    p = add(
        "register",
        "sign and register offers (one or thousands)",
        'Sign and register offers. FILE holds {"name": "...", "offer": {...}} (an offer body as\n'
        "in spec section 4), a JSON list of those, or NDJSON (.ndjson/.jsonl, one per line) for\n"
        'bulk imports; an item may carry its own "serial". Everything is checked before anything\n'
        "is sent; batches then go out concurrently with progress on stderr. Exit status 1 if\n"
        "any offer was refused (each refusal is printed).",
        handler=cmd_register,
        parents=[
            _signing_options("a signing key file of the governing namespace", _REGISTER_SERIAL_HELP)
        ],
    )
    p.add_argument("file", metavar="FILE", help="JSON or NDJSON file ('-' for stdin)")
    validity(p, 3600, "offer", days=False)
    bulk(p)

    p = add(
        "submit",
        "submit records signed elsewhere (e.g. a delegation written with --out)",
        "Submit signed envelopes as written by --out: a JSON envelope, a list, or NDJSON.",
        handler=cmd_submit,
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    bulk(p)

    p = add(
        "refresh",
        "heartbeat an offer: new free capacity and expiry",
        "Sign a refresh for the offer at NAME: it resolves the current offer to name its version\n"
        "(the refresh's base) and continues its serial sequence.",
        handler=cmd_refresh,
        parents=[named, _signing_options("a signing key file of the governing namespace")],
    )
    p.add_argument("--units-free", type=_non_negative, required=True, metavar="N")
    validity(p, 3600, "refreshed offer", days=False)

    p = add(
        "delete",
        "delete a record with a signed tombstone",
        "Sign a tombstone deleting the record of --type at NAME. The serial defaults to the\n"
        "larger of now and the held record's serial + 1.",
        handler=cmd_delete,
        parents=[named, _signing_options("key file that may sign the record being deleted")],
    )
    p.add_argument(
        "--type",
        default="offer",
        choices=["offer", "zone", "delegation", "keyrotation"],
        help="the record type to delete (default: offer)",
    )
    validity(p, 7 * 86_400, "tombstone", days=False)

    # queries
    p = add(
        "resolve",
        "resolve a name (verified with --root-key)",
        "Resolve NAME to its records, or a referral. With --root-key the answer is verified from\n"
        "the trust anchor: every proof record (delegations, rotations) from the root down, then\n"
        "each record; the first failure is reported as its typed error (exit status 1).",
        handler=cmd_resolve,
        parents=[named],
    )
    _repeatable(
        p,
        "--root-key",
        "the trust anchor: the operator's root public key(s) (repeatable)",
        "PUBFILE",
    )

    p = add(
        "list",
        "list the records in a namespace",
        "List the records at and below NAMESPACE.",
        handler=cmd_list,
    )
    p.add_argument("namespace", metavar="NAMESPACE")
    _limit_option(p, "page size", 100)
    p.add_argument("--cursor", metavar="C", help="continue from a previous page")
    p.add_argument("--all", action="store_true", help="follow next_cursor to the end")

    p = add(
        "search",
        "search offers by capability",
        "Search the registry's live offers. The query is the spec's query message (section 7.4)\n"
        "as JSON (--query-json '{...}' or --query-json @file.json), or in the textual query\n"
        "language of section 13, e.g. 'class=general vcpu=1 mem=2GiB for 3months order=cost\n"
        "currency=CNY'.\nThe table shows rank, name, total cost for the query's demand and\n"
        "duration, units, RTT to near.region and the weighted score.",
        handler=cmd_search,
    )
    p.add_argument(
        "query",
        nargs="?",
        metavar="QUERY",
        help="textual query (spec section 13)",
    )
    p.add_argument("--query-json", metavar="JSON|@FILE", help="the query message as JSON")
    _limit_option(p, "override the limit")
    p.add_argument("--cursor", metavar="C", help="the next page of a previous search")

    p = add(
        "snapshot",
        "export the registry's catalogue",
        "Download the registry's snapshot (every live record at one registry serial, with a\n"
        "signed head), check its digest, and write it as JSON. Progress on stderr.",
        handler=cmd_snapshot,
    )
    p.add_argument("--out", required=True, metavar="FILE", help="output file ('-' for stdout)")
    _repeatable(p, "--service-key", "the registry's service key: also verify the head's signature")
    p.add_argument(
        "--timeout-snapshot", type=float, default=600.0, metavar="S", help=argparse.SUPPRESS
    )

    p = add(
        "feed",
        "print the registry's change feed",
        "Print the changes after registry serial --since (like DNS IXFR). With --follow, keep\n"
        "long-polling for new changes until Ctrl-C or --max-changes. With --json, one JSON\n"
        "object per change per line (NDJSON). From --since 0 the hash chain is recomputed and\n"
        "checked against every signed head.",
        handler=cmd_feed,
    )
    p.add_argument("--since", type=_non_negative, default=0, metavar="N")
    p.add_argument("--follow", action="store_true", help="wait for new changes")
    p.add_argument("--max-changes", type=_positive, metavar="N", help="stop after N changes")
    _limit_option(p, "page size", 1000)
    p.add_argument("--wait", type=_ranged(1, 30), default=25, metavar="S", help="long-poll seconds")
    _repeatable(p, "--service-key", "the registry's service key: also verify each head's signature")

    p = add(
        "negotiate",
        "negotiate an agreement for an offer (demand, quote, accept, co-sign)",
        "Negotiate with the provider of OFFER: resolve and verify the offer and the provider's\n"
        "zone record from the trust anchor, send a signed demand, verify the quote (signature,\n"
        "terms, price recomputed from the offer), accept it, verify and co-sign the agreement.\n"
        "The agreement (signed by both parties) is written to --out.",
        "Example:\n  cid negotiate general.guizhou --key me.key --root-key root.pub.json \\\n"
        "      --quantity 1 --duration 3months --max-price 40CNY --storage-gib 100",
        handler=cmd_negotiate,
        parents=[requester],
    )
    p.add_argument("offer", metavar="OFFER")
    p.add_argument("--quantity", type=_positive, default=1, metavar="N", help="units (default 1)")
    p.add_argument(
        "--duration", type=parse_duration, required=True, metavar="D", help="3months, 90d, 12h..."
    )
    p.add_argument(
        "--max-price", type=parse_price, required=True, metavar="PRICE", help="e.g. 40CNY"
    )
    p.add_argument(
        "--start-within",
        type=parse_duration,
        default=300,
        metavar="D",
        help="latest acceptable start, from now (default 300 s)",
    )
    p.add_argument("--vcpu", type=_non_negative, metavar="N", help="resources the order states")
    p.add_argument("--memory-gib", type=_non_negative, metavar="N")
    p.add_argument("--storage-gib", type=_non_negative, metavar="N")
    p.add_argument("--accelerators", type=_non_negative, metavar="N")
    p.add_argument(
        "--accept-counter", action="store_true", help="accept a counter-offer (default: decline)"
    )
    p.add_argument(
        "--out", default="agreement.json", metavar="FILE", help="default agreement.json; - stdout"
    )

    p = add(
        "invoke",
        "run a command under an agreement, with live status",
        "Submit a signed task (fresh nonce, addressed to the provider) under the co-signed\n"
        "agreement in AGREEMENT_FILE, follow its status live (server-sent events), then fetch\n"
        "and verify the signed result (output digests) and the signed receipt (cost at the\n"
        "agreement's rates). Exit status 1 unless the task succeeded.",
        "Example:\n  cid invoke agreement.json --key me.key --root-key root.pub.json -- "
        "python -c 'print(42)'",
        handler=cmd_invoke,
        parents=[requester],
    )
    p.add_argument("agreement", metavar="AGREEMENT_FILE")
    _repeatable(p, "--env", "task environment", "NAME=VALUE")
    p.add_argument("--cpu-s", type=_positive, metavar="S", help="lower the task's CPU limit")
    p.add_argument("--memory-mib", type=_positive, metavar="MIB", help="lower the memory limit")
    p.add_argument("--wall-s", type=_positive, metavar="S", help="lower the wall-clock limit")
    p.add_argument("--out-dir", metavar="DIR", help="save the (verified) output files here")
    p.add_argument(
        "--receipt", metavar="FILE", help="where to write the receipt (default receipt-ID.json)"
    )
    p.set_defaults(argv=[])  # the command after "--" (see main)

    p = add(
        "receipt",
        "verify a signed metering receipt offline",
        "Verify a receipt against its agreement with the provider's service key, offline:\n"
        "signatures, the agreement it names, usage within the agreement's limits, issue time,\n"
        "and the cost recomputed at the agreement's rates.",
        handler=cmd_receipt,
    )
    p.add_argument("action", choices=["verify"])
    p.add_argument("receipt_file", metavar="RECEIPT_FILE")
    p.add_argument("--agreement", required=True, metavar="FILE", help="the co-signed agreement")
    _repeatable(p, "--service-key", "the provider's service key(s) (repeatable)", required=True)
    p.add_argument(
        "--requester-key",
        metavar="PUB",
        help="the requester's public key: also check its signature on the agreement",
    )
    p.add_argument("--now", type=_non_negative, help=argparse.SUPPRESS)

    p = add(
        "registry",
        "run a registry (same as cid-registry)",
        "Run or check a registry: `cid registry serve ...` is `cid-registry serve ...`.",
        handler=cmd_registry,
    )
    return parser


# --- entry point ----------------------------------------------------------------------------


def _run_registry(argv: list[str]) -> int:
    """``cid registry ...`` is ``cid-registry ...`` (imported lazily: most users never serve)."""
    module = importlib.import_module("cid_registry.cli")
    result = module.main(argv)
    return int(result or 0)


_KEY_OPTIONS: Final = frozenset(
    {"--to", "--new", "--revoke", "--service-key", "--root-key", "--requester-key"}
)
"""Options whose value is a key id or a base64url public key, which may begin with ``-``."""


def _attach_key_values(args: list[str]) -> list[str]:
    """``--revoke -Ab3…`` as ``--revoke=-Ab3…``: argparse would read the value as an option.

    A key id or public key is base64url, whose alphabet includes ``-``; one in 64
    starts with it. Only the values of :data:`_KEY_OPTIONS` are attached, and
    only up to ``--`` (what follows it is a task's command line).
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        nxt = args[i + 1] if i + 1 < len(args) else None
        if arg in _KEY_OPTIONS and nxt is not None and nxt.startswith("-") and nxt != "--":
            out.append(f"{arg}={nxt}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cid`` command line; returns the exit status."""
    args_list = _attach_key_values(list(sys.argv[1:] if argv is None else argv))
    if args_list[:1] == ["registry"] and args_list[1:2] not in (["-h"], ["--help"], []):
        return _run_registry(args_list[1:])
    command: list[str] = []
    if args_list[:1] == ["invoke"] and "--" in args_list:
        # everything after "--" is the task's command, options included
        cut = args_list.index("--")
        args_list, command = args_list[:cut], args_list[cut + 1 :]
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
        if command:
            args.argv = command
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    out = Output(json=args.json, quiet=args.quiet)
    handler: Callable[[argparse.Namespace, Output], Coroutine[Any, Any, int]] = args.handler
    try:
        return asyncio.run(handler(args, out))
    except UsageError as e:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"cid {args.command}: error: {e}\n")
        return EXIT_USAGE
    except CidError as e:
        out.error(e)
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except Exception as e:
        if os.environ.get("CID_DEBUG"):
            traceback.print_exc()
        out.error(InternalError(f"{type(e).__name__}: {e}"))
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
