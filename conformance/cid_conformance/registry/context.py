"""What every registry case gets: the HTTP client, the keys, the clock, and the test world.

Theory of operation
-------------------
The suite talks to the registry only over HTTP (§12). It needs three things
it cannot take from the registry on trust:

* the **trust anchor** (``--root-keys``, or the public half of ``--root-key``),
  against which it verifies every record it reads, the root zone record first;
  the root zone names the registry's service keys, which sign feed heads and
  snapshots ([REQ-FEED-002]);
* for write cases, **a namespace it may write in**: with the operator's root key
  (``--root-key``) it delegates a fresh top-level namespace ``cidconf-<random>``;
  with a pre-delegated namespace (``--namespace N --namespace-key FILE``, a current
  signing key of N) it delegates ``run-<random>.N``. Every write of the run happens
  inside that fresh namespace (the run's *apex*), so runs never collide;
* **the registry's clock**: records must be valid at the registry's "now", which
  may not be the suite's. The suite reads it from signed heads, whose ``at`` is the
  signing time ([REQ-FEED-002]): any served head is at most an hour old, and the
  head of a change the suite has just written is fresh, which pins the clock to
  within a second for the rest of the run.

The **world** (the apex, its zone, the search catalogue of :mod:`.data`, a
delegated child namespace, a referral, and short-lived records whose expiry the
late cases observe) is built once, on first use, by the first write case. If the
registry refuses any of it, every case that needs it fails with that reason.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cid.envelope import Envelope
from cid.errors import CidError
from cid.identifier import Identifier
from cid.signing import PublicKey, SigningKey
from cid.trust import TrustState

from ..case import CaseFailed, CaseSkipped, check, fail
from ..signed import digest_of, key_value, signed
from ..wire import JSON, MSGPACK, Http, Reply, name_segment
from . import data

__all__ = ["RegistryContext", "RegistryOptions", "World"]

DAY: Final = 86_400
REFERRAL_URL: Final = "https://registry.elsewhere.example/cid"


@dataclass(frozen=True)
class RegistryOptions:
    url: str
    root_keys: list[PublicKey]
    root_key: SigningKey | None = None
    namespace: str | None = None
    namespace_key: SigningKey | None = None
    peers: tuple[str, ...] = ()
    read_timeout_s: float = 15.0
    rate_probe_max: int = 20_000
    search_budget: int | None = None
    expiry_s: int = 4
    """Lifetime of the world's short-lived records: the late cases wait for them to expire."""
    allow_writes: bool = False


@dataclass
class World:
    """What the run published: names, keys and the exact envelopes submitted."""

    apex: str
    anchor: SigningKey
    """The apex's anchor key; with no key rotation it signs the apex's records."""
    service: SigningKey
    """The service key the apex's zone names (never authorised for records)."""
    child_key: SigningKey
    """Anchor key of the delegated child ``d.<apex>``."""
    lapse_key: SigningKey = field(default_factory=SigningKey.generate)
    """Anchor key of ``lapse.<apex>``, whose delegation expires with the short-lived records."""
    lapse_searchable: bool = False
    """Whether a search found the offer ``a.lapse.<apex>`` while its authority was in force."""
    envelopes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every envelope of the world by a short key: ``delegation``, ``zone``, ``cat:gz`` …"""
    first_rseq: int = 0
    expiry_at: int = 0
    """When the world's short-lived records expire (registry time)."""

    def name(self, relative: str) -> str:
        return f"{relative}.{self.apex}" if relative else self.apex

    @property
    def catalogue(self) -> str:
        return self.name("cat")


class RegistryContext:
    """The state shared by the registry cases of one run."""

    def __init__(self, options: RegistryOptions, http: Http) -> None:
        self.options = options
        self.http = http
        self.errors_seen: list[Reply] = []
        self.negotiated_seen: list[Reply] = []
        """Successful answers in a cid media type (the first 2,000), for [REQ-REG-007]."""
        self._clock: tuple[int, float, bool] | None = None
        self._world: World | None = None
        self._world_error: str | None = None
        self._world_lock = asyncio.Lock()
        self._root: tuple[dict[str, Any], dict[str, PublicKey]] | None = None
        self.run_id = secrets.token_hex(4)
        self.counter = 0

    # -- requests ------------------------------------------------------------------

    async def get(self, path: str, **kw: Any) -> Reply:
        return self._seen(await self.http.get(path, **kw))

    async def request(self, method: str, path: str, **kw: Any) -> Reply:
        return self._seen(await self.http.request(method, path, **kw))

    async def post(self, path: str, value: Any, **kw: Any) -> Reply:
        return self._seen(await self.http.post_value(path, value, **kw))

    def _seen(self, reply: Reply) -> Reply:
        if reply.status >= 400:
            self.errors_seen.append(reply)
        elif (
            reply.method != "HEAD"
            and reply.media_type in (JSON, MSGPACK)
            and len(self.negotiated_seen) < 2000
        ):
            self.negotiated_seen.append(reply)
        return reply

    async def submit(self, envelope: Mapping[str, Any], **kw: Any) -> Reply:
        """``POST /v1/records`` with one envelope (canonical JSON unless told otherwise)."""
        return await self.post("/v1/records", dict(envelope), **kw)

    async def resolve(self, name: str, **kw: Any) -> Reply:
        return await self.get(f"/v1/names/{name_segment(name)}", accept=JSON, **kw)

    async def search(self, query: Mapping[str, Any]) -> Reply:
        return await self.post("/v1/search", dict(query))

    # -- expectations ------------------------------------------------------------------

    @staticmethod
    def expect_status(reply: Reply, *statuses: int) -> None:
        check(
            reply.status in statuses,
            f"expected HTTP {' or '.join(map(str, statuses))}: {reply.brief()}",
        )

    @staticmethod
    def expect_error(
        reply: Reply,
        code: int | tuple[int, ...],
        *,
        field: str | None = None,
        rule: str | None = None,
        reason: str | None = None,
    ) -> None:
        """The answer is the cid error ``code`` (its status per Table 10-1 is checked elsewhere)."""
        codes = code if isinstance(code, tuple) else (code,)
        check(
            reply.status >= 400 and reply.code in codes,
            f"expected error {'/'.join(map(str, codes))}: {reply.brief()}",
        )
        err = reply.error()
        if field is not None:
            check(err.get("field") == field, f"expected field {field!r}: {reply.brief()}")
        raw_detail = err.get("detail")
        detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
        if rule is not None:
            check(detail.get("rule") == rule, f"expected detail.rule {rule!r}: {reply.brief()}")
        if reason is not None:
            check(
                detail.get("reason") == reason,
                f"expected detail.reason {reason!r}: {reply.brief()}",
            )

    async def refused(
        self,
        envelope: Mapping[str, Any],
        code: int | tuple[int, ...],
        *,
        field: str | None = None,
        under: str | None = None,
        rule: str | None = None,
        **kw: Any,
    ) -> Reply:
        """Submit a record that must be refused with ``code`` (and ``field``/``rule`` when given).

        ``under``: the error's ``field`` must name that member or one inside it.
        """
        reply = await self.submit(envelope, **kw)
        self.expect_error(reply, code, field=field, rule=rule)
        if under is not None:
            got = reply.field
            check(
                isinstance(got, str) and (got == under or got.startswith(under + ".")),
                f"expected field {under!r} (or a member inside it): {reply.brief()}",
            )
        return reply

    async def accepted(
        self, envelope: Mapping[str, Any], *, status: tuple[int, ...] = (201,), what: str = ""
    ) -> dict[str, Any]:
        """Submit and insist on acceptance; returns the ``Accepted`` value."""
        reply = await self.submit(envelope)
        if reply.status not in status:
            fail(
                f"the registry refused a valid {what or 'record'} "
                f"{envelope['header'].get('typ')} at {envelope['header'].get('sub')!r}: "
                f"{reply.brief()}"
            )
        value = reply.value()
        check(isinstance(value, dict), f"Accepted is not a map: {value!r}")
        return dict(value)

    # -- clock -----------------------------------------------------------------------

    async def now(self) -> int:
        """The registry's current time, as well as the suite knows it."""
        if self._clock is None:
            at = await self._head_time(None)
            self._clock = (at, time.monotonic(), False)
        at, mono, _ = self._clock
        return at + int(time.monotonic() - mono)

    async def pin_clock(self, rseq: int) -> None:
        """Read the registry time from the (fresh) head of change ``rseq`` we just wrote."""
        if self._clock is not None and self._clock[2]:
            return
        at = await self._head_time(rseq)
        self._clock = (at, time.monotonic(), True)

    async def _head_time(self, rseq: int | None) -> int:
        query = {"limit": "1"} if rseq is None else {"since": str(rseq - 1), "limit": "1"}
        reply = await self.get("/v1/feed", query=query, accept=JSON)
        try:
            value = reply.value()
            at = value["head"]["body"]["at"]
            if isinstance(at, int) and not isinstance(at, bool):
                return at
        except (CidError, ValueError, KeyError, TypeError):
            pass
        return int(time.time())

    # -- the trust anchor and the root zone --------------------------------------------------

    def trust(self) -> TrustState:
        return TrustState(self.options.root_keys)

    async def root_zone(self) -> tuple[dict[str, Any], dict[str, PublicKey]]:
        """The root zone record, verified against the trust anchor, and its service keys."""
        if self._root is not None:
            return self._root
        reply = await self.resolve(".", query={"types": "zone"})
        if reply.status != 200:
            fail(f"the root zone record cannot be resolved: {reply.brief()}")
        records = [r for r in reply.value().get("records", []) if isinstance(r, dict)]
        zones = [r for r in records if r.get("header", {}).get("typ") == "cid.record.zone"]
        check(len(zones) == 1, f"expected one root zone record, got {len(zones)}")
        try:
            rec = self.trust().verify(Envelope.from_value(zones[0]), now=await self.now())
        except CidError as e:
            fail(f"the root zone record does not verify against the trust anchor: {e}")
        keys = {k.kid: k for k in rec.body.service_keys}
        self._root = (zones[0], keys)
        return self._root

    # -- names -------------------------------------------------------------------------

    def unique(self, prefix: str = "c") -> str:
        """A fresh label for a case's own records."""
        self.counter += 1
        return f"{prefix}{self.counter}"

    # -- the world ---------------------------------------------------------------------

    async def world(self) -> World:
        """The run's published world, built on first use (needs writes and a key)."""
        if not self.options.allow_writes:
            raise CaseSkipped("needs --allow-writes")
        async with self._world_lock:
            if self._world is not None:
                return self._world
            if self._world_error is not None:
                fail(f"precondition: {self._world_error}")
            try:
                self._world = await self._build_world()
            except CaseSkipped:
                raise
            except CaseFailed as e:
                self._world_error = e.message
                fail(f"precondition: {e.message}")
            return self._world

    async def _build_world(self) -> World:
        opts = self.options
        if opts.root_key is not None:
            parent_key, apex = opts.root_key, f"cidconf-{self.run_id}"
        elif opts.namespace and opts.namespace_key is not None:
            parent_key = opts.namespace_key
            apex = f"run-{self.run_id}.{Identifier.parse(opts.namespace).to_text()}"
        else:
            raise CaseSkipped("write cases need --root-key, or --namespace with --namespace-key")
        w = World(
            apex=apex,
            anchor=SigningKey.generate(),
            service=SigningKey.generate(),
            child_key=SigningKey.generate(),
        )
        now = await self.now()
        # the coarse clock can be up to an hour behind: a wide window for the delegation
        delegation = signed(
            "delegation",
            apex,
            {"keys": [key_value(w.anchor)], "registries": []},
            parent_key,
            serial=1,
            nbf=now - 600,
            exp=now + 30 * DAY,
            ttl=3600,
        )
        acc = await self.accepted(delegation, what="delegation of the test namespace")
        w.envelopes["delegation"] = delegation
        rseq = acc.get("rseq")
        if isinstance(rseq, int):
            w.first_rseq = rseq
            await self.pin_clock(rseq)
        now = await self.now()
        nbf, exp = now - 60, now + DAY

        def rec(
            key: str, rtype: str, rel: str, body: dict[str, Any], signer: SigningKey, **kw: Any
        ) -> dict[str, Any]:
            env = signed(
                rtype,
                w.name(rel),
                body,
                signer,
                serial=kw.pop("serial", 1),
                nbf=kw.pop("nbf", nbf),
                exp=kw.pop("exp", exp),
                **kw,
            )
            w.envelopes[key] = env
            return env

        zone_body = {
            "display_name": "cid conformance test provider",
            "service_keys": [key_value(w.service)],
            "endpoints": {
                "negotiate": "https://provider.example/cid/negotiate",
                "invoke": "https://provider.example/cid/invoke",
            },
            "contact": {"org": "cid conformance", "email": "noc@provider.example"},
        }
        await self.accepted(rec("zone", "zone", "", zone_body, w.anchor, ttl=3600))
        for label, body in data.CATALOGUE.items():
            await self.accepted(rec(f"cat:{label}", "offer", f"{label}.cat", body, w.anchor))
        # the Inner Mongolia pool is read with a refresh: 7 units free ([REQ-QRY-021])
        nm = w.envelopes["cat:nm"]
        refresh = rec(
            "cat:nm:refresh",
            "refresh",
            "nm.cat",
            {"base": digest_of(nm), "units_free": 7},
            w.anchor,
            serial=2,
            ttl=120,
        )
        await self.accepted(refresh, status=(200,), what="refresh")
        # a delegated child namespace with its own zone and an offer
        await self.accepted(
            rec("child:delegation", "delegation", "d", {"keys": [key_value(w.child_key)]}, w.anchor)
        )
        await self.accepted(rec("child:offer", "offer", "o.d", data.GUIZHOU, w.child_key))
        # a namespace served elsewhere: names in it are answered with a referral
        await self.accepted(
            rec(
                "referral",
                "delegation",
                "ref",
                {"keys": [key_value(SigningKey.generate())], "registries": [REFERRAL_URL]},
                w.anchor,
            )
        )
        # records that expire while the run goes on ([REQ-REG-034], [REQ-REC-062])
        now = await self.now()
        w.expiry_at = now + self.options.expiry_s
        soon = rec("soon", "offer", "soon", data.GUIZHOU, w.anchor, exp=w.expiry_at)
        await self.accepted(soon)
        await self.accepted(
            rec(
                "lapse:delegation",
                "delegation",
                "lapse",
                {"keys": [key_value(w.lapse_key)]},
                w.anchor,
                exp=w.expiry_at,
            )
        )
        await self.accepted(rec("lapse:offer", "offer", "a.lapse", data.GUIZHOU, w.lapse_key))
        found = await self.search({"within": w.name("lapse")})
        w.lapse_searchable = found.status == 200 and bool(found.value().get("results"))
        kept = rec("kept", "offer", "kept", data.GUIZHOU, w.anchor, exp=w.expiry_at)
        await self.accepted(kept)
        await self.accepted(
            rec(
                "kept:refresh",
                "refresh",
                "kept",
                {"base": digest_of(kept), "units_free": 42},
                w.anchor,
                serial=2,
                exp=now + 2 * 3600,
                ttl=60,
            ),
            status=(200,),
            what="refresh",
        )
        return w

    async def wait_for_expiry(self, world: World) -> None:
        """Sleep until the world's short-lived records have expired (registry time)."""
        while (now := await self.now()) < world.expiry_at + 1:
            await asyncio.sleep(min(1.0, world.expiry_at + 1 - now))

    def sign_as(
        self,
        world: World,
        rtype: str,
        rel: str,
        body: Mapping[str, Any],
        key: SigningKey | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        """A record in the world's apex, valid now unless ``kw`` says otherwise."""
        assert self._clock is not None
        now = self._clock[0] + int(time.monotonic() - self._clock[1])
        return signed(
            rtype,
            world.name(rel),
            dict(body),
            key or world.anchor,
            serial=kw.pop("serial", 1),
            nbf=kw.pop("nbf", now - 60),
            exp=kw.pop("exp", now + DAY),
            **kw,
        )
