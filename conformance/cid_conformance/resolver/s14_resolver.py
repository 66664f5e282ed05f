"""§14 Resolvers and local catalogues, against scripted registries on a virtual clock."""

from __future__ import annotations

from typing import Any

from ..case import Section, check, check_equal
from ..registry import data
from ..signed import digest_of
from . import ResolverContext
from .scripted import DAY, NOW, Feed, Pki, answer, closed_port_url, referral

s = Section("resolver", "14", "Resolvers and local catalogues")

NAME = "gz.prov"


def _world(**offer: Any) -> tuple[Pki, dict[str, Any], dict[str, Any]]:
    pki = Pki()
    deleg = pki.delegation("prov")
    return pki, deleg, pki.offer(NAME, data.GUIZHOU, ns="prov", **offer)


def _digests(records: Any) -> list[str]:
    return [digest_of(r) for r in records or []]


# --- 14.1 resolution ---------------------------------------------------------------------


@s.case(
    1,
    "a verified answer is used; every record and the proof verify from the anchor",
    "REQ-RES-006",
    "REQ-QRY-018",
    "REQ-SEC-001",
    "REQ-QRY-001",
)
async def verified_answer(ctx: ResolverContext) -> None:
    """A resolver MUST verify every answer before it uses any part of it: first each record of proof
    from the top down ..., then each record against the namespace that governs it."""
    pki, deleg, offer = _world()
    reg = await ctx.registry()
    reg.names[NAME] = answer(NAME, [offer], [deleg])
    out = await ctx.resolve(await ctx.resolver(pki, reg.url), NAME, NOW)
    check(out.ok is not None, f"a valid answer was refused: {out.brief()}")
    assert out.ok is not None
    check_equal(_digests(out.ok.get("records")), [digest_of(offer)], "the records answered")
    check_equal(out.ok.get("name"), NAME, "the name")


_TAMPER = {
    "a proof whose signature is broken": "proof",
    "a record signed by a key outside the namespace": "stranger",
    "an expired record": "expired",
    "a record whose authority path has expired": "chain",
    "a proof holding something other than delegations and rotations": "proof_typ",
    "a record of another name": "record_name",
}


@s.case(
    2,
    "an answer that fails any check is refused with that check's error, and not cached",
    "REQ-RES-006",
    "REQ-QRY-018",
    "REQ-QRY-011",
    "REQ-QRY-001",
    "REQ-SEC-001",
    "REQ-SIG-049",
)
async def refused_answers(ctx: ResolverContext) -> None:
    """An answer that fails any check MUST be refused with the error of the failed check (for
    example
    SIGNATURE_INVALID, KEY_UNKNOWN, KEY_NOT_AUTHORISED, EXPIRED, CHAIN_BROKEN), and nothing of it
    MUST
    be cached."""
    from cid.signing import SigningKey

    for what, kind in _TAMPER.items():
        pki, deleg, offer = _world()
        records, proof = [offer], [deleg]
        expected: tuple[int, ...]
        if kind == "proof":
            proof = [
                {**deleg, "sigs": [{**deleg["sigs"][0], "sig": deleg["sigs"][0]["sig"][::-1]}]}
            ]
            expected = (2001, 1003)
        elif kind == "stranger":
            records = [pki.offer(NAME, data.GUIZHOU, ns="prov", key=SigningKey.generate())]
            expected = (2002, 2003)
        elif kind == "expired":
            records = [pki.offer(NAME, data.GUIZHOU, ns="prov", nbf=NOW - DAY, exp=NOW - 1)]
            expected = (2004,)
        elif kind == "chain":
            proof = [pki.delegation("prov", exp=NOW - 10)]
            expected = (2009, 2004)
        elif kind == "proof_typ":
            proof = [deleg, pki.offer("x.prov", data.GUIZHOU, ns="prov")]
            expected = (1003,)
        else:
            records = [offer, pki.offer("other.prov", data.GUIZHOU, ns="prov")]
            expected = (1003,)
        reg = await ctx.registry()
        reg.names[NAME] = answer(NAME, records, proof)
        handle = await ctx.resolver(pki, reg.url)
        out = await ctx.resolve(handle, NAME, NOW)
        check(out.code in expected, f"{what}: {out.brief()}, expected {expected}")
        reg.names[NAME] = answer(NAME, [offer], [deleg])
        again = await ctx.resolve(handle, NAME, NOW)
        check(
            again.ok is not None and reg.hits[NAME] == 2,
            f"{what}: after the refusal, a correct answer was not fetched again ({again.brief()})",
        )


@s.case(
    3,
    "referrals are followed after their delegation verifies",
    "REQ-QRY-013",
    "REQ-RES-001",
    "REQ-QRY-012",
)
async def referrals(ctx: ResolverContext) -> None:
    """A resolver following referrals MUST verify each delegation it receives (§6.4) before it
    contacts the registries it lists."""
    pki = Pki()
    top, served = await ctx.registry(), await ctx.registry()
    deleg = pki.delegation("prov", registries=[served.url])
    offer = pki.offer(NAME, data.GUIZHOU, ns="prov")
    top.names[NAME] = referral(NAME, "prov", [served.url], deleg, [])
    served.names[NAME] = answer(NAME, [offer], [deleg])
    out = await ctx.resolve(await ctx.resolver(pki, top.url), NAME, NOW)
    check(out.ok is not None, f"a referral was not followed: {out.brief()}")
    assert out.ok is not None
    check_equal(_digests(out.ok.get("records")), [digest_of(offer)], "records after the referral")
    # a referral whose delegation does not verify: the registry it names is never contacted
    pki2 = Pki()
    top2, trap = await ctx.registry(), await ctx.registry()
    bad = pki2.delegation("prov", registries=[trap.url])
    bad = {**bad, "sigs": [{**bad["sigs"][0], "sig": bad["sigs"][0]["sig"][::-1]}]}
    top2.names[NAME] = referral(NAME, "prov", [trap.url], bad, [])
    trap.names[NAME] = answer(NAME, [pki2.offer(NAME, data.GUIZHOU, ns="prov")], [])
    out = await ctx.resolve(await ctx.resolver(pki2, top2.url), NAME, NOW)
    check(out.ok is None, "an answer was used after a referral whose delegation does not verify")
    check_equal(trap.hits[NAME], 0, "requests to the registry of an unverified referral")


@s.case(
    4, "referral loops and more than 8 referrals stop the resolution", "REQ-QRY-013", "REQ-RES-001"
)
async def referral_limits(ctx: ResolverContext) -> None:
    """MUST NOT follow more than 8 referrals for one resolution (REFERRAL_DEPTH_EXCEEDED, 3003) and
    MUST stop with REFERRAL_LOOP (3002) when a referral names a namespace it has already been
    referred to in the same resolution."""
    pki = Pki()
    a, b = await ctx.registry(), await ctx.registry()
    deleg = pki.delegation("prov", registries=[b.url])
    a.names[NAME] = referral(NAME, "prov", [b.url], deleg, [])
    b.names[NAME] = referral(NAME, "prov", [a.url], deleg, [])
    out = await ctx.resolve(await ctx.resolver(pki, a.url), NAME, NOW)
    check_equal(out.code, 3002, f"a referral loop: {out.brief()}")
    # nine nested namespaces, each served by its own registry
    pki = Pki()
    regs = [await ctx.registry() for _ in range(10)]
    namespaces = [".".join(f"x{j}" for j in range(i, 0, -1)) for i in range(1, 10)]
    name = "leaf." + namespaces[-1]
    delegs = []
    for i, ns in enumerate(namespaces):
        delegs.append(pki.delegation(ns, registries=[regs[i + 1].url]))
    for i, reg in enumerate(regs[:-1]):
        reg.names[name] = referral(name, namespaces[i], [regs[i + 1].url], delegs[i], delegs[:i])
    regs[-1].names[name] = answer(name, [pki.offer(name, data.GUIZHOU, ns=namespaces[-1])], delegs)
    out = await ctx.resolve(await ctx.resolver(pki, regs[0].url, budget=50), name, NOW)
    check_equal(out.code, 3003, f"a ninth referral: {out.brief()}")
    check_equal(regs[-1].hits[name], 0, "requests to the registry behind the ninth referral")
    # eight referrals are fine
    regs8 = regs[1:]
    handle = await ctx.resolver(pki, regs8[0].url, budget=50)
    regs8[0].names[name] = referral(name, namespaces[1], [regs[2].url], delegs[1], delegs[:1])
    out = await ctx.resolve(handle, name, NOW)
    check(out.ok is not None, f"eight referrals: {out.brief()}")


@s.case(
    5,
    "failing registries are skipped; none left is UNAVAILABLE; the query budget holds",
    "REQ-RES-001",
)
async def failover(ctx: ResolverContext) -> None:
    """A registry that cannot be reached, or answers with a retryable or server-side error, MUST be
    skipped for the next one in order; when none is left the resolution MUST fail with UNAVAILABLE
    (6004) ... past the query budget it MUST stop with QUERY_BUDGET_EXCEEDED (3004)."""
    pki, deleg, offer = _world()
    down, up = await ctx.registry(), await ctx.registry()
    down.down = True
    up.names[NAME] = answer(NAME, [offer], [deleg])
    for first in (down.url, closed_port_url()):
        out = await ctx.resolve(await ctx.resolver(pki, first, up.url), NAME, NOW)
        check(out.ok is not None, f"the second registry was not asked after {first}: {out.brief()}")
    down2 = await ctx.registry()
    down2.down = True
    out = await ctx.resolve(await ctx.resolver(pki, down.url, down2.url), NAME, NOW)
    check_equal(out.code, 6004, f"every registry down: {out.brief()}")
    spare = await ctx.registry()
    spare.names[NAME] = answer(NAME, [offer], [deleg])
    out = await ctx.resolve(
        await ctx.resolver(pki, down.url, down2.url, spare.url, budget=2), NAME, NOW
    )
    check_equal(
        out.code, 3004, f"a budget of 2 queries with two failing registries first: {out.brief()}"
    )
    check_equal(spare.hits[NAME], 0, "queries beyond the budget")


@s.case(6, "rollbacks are refused, whichever registry answers", "REQ-RES-004", "REQ-SIG-032")
async def rollback(ctx: ResolverContext) -> None:
    """A resolver MUST remember, for every record identity (name, type; a refresh counts as the
    identity (name, offer)), the highest serial it has accepted, and MUST refuse an answer carrying
    a
    lower serial for that identity with SERIAL_ROLLBACK (2006), whichever registry or mirror it came
    from."""
    # the first version expires before the second question: no cache may answer it ([REQ-RES-002])
    pki, deleg, _ = _world()
    v5 = pki.offer(NAME, data.GUIZHOU, ns="prov", serial=5, ttl=60, exp=NOW + 100)
    v4 = pki.offer(NAME, data.offer(title="older"), ns="prov", serial=4, ttl=60)
    a, mirror = await ctx.registry(), await ctx.registry()
    a.names[NAME] = answer(NAME, [v5], [deleg])
    mirror.names[NAME] = answer(NAME, [v4], [deleg])
    handle = await ctx.resolver(pki, a.url, mirror.url)
    check((await ctx.resolve(handle, NAME, NOW)).ok is not None, "serial 5 was refused")
    a.down = True
    out = await ctx.resolve(handle, NAME, NOW + 120)
    check_equal(out.code, 2006, f"serial 4 from a mirror after serial 5: {out.brief()}")
    # a refresh is a version of (name, offer): the offer alone after its refresh is a rollback
    pki, deleg, offer = _world(serial=5, ttl=60, exp=NOW + 100)
    fresh = pki.refresh(offer, 3, ns="prov", serial=6, exp=NOW + 100)
    reg = await ctx.registry()
    reg.names[NAME] = answer(NAME, [offer, fresh], [deleg])
    handle = await ctx.resolver(pki, reg.url)
    check(
        (await ctx.resolve(handle, NAME, NOW)).ok is not None,
        "an offer with its refresh was refused",
    )
    older = pki.offer(NAME, data.offer(title="older"), ns="prov", serial=3, ttl=60)
    reg.names[NAME] = answer(NAME, [older], [deleg])
    out = await ctx.resolve(handle, NAME, NOW + 120)
    check_equal(out.code, 2006, f"an offer below the refresh's serial: {out.brief()}")


@s.case(
    7,
    "a refresh applies only to the offer version it names",
    "REQ-RES-007",
    "REQ-REC-061",
    "REQ-REC-062",
)
async def refresh(ctx: ResolverContext) -> None:
    """a resolver MUST refuse an answer holding a refresh for another version with SCHEMA_VIOLATION
    (1003), rule stale_refresh. While a valid refresh is present, the offer is checked as
    [REQ-REC-062] says (its nbf and iat only)."""
    pki, deleg, v1 = _world(serial=1)
    v2 = pki.offer(NAME, data.offer(title="v2"), ns="prov", serial=2)
    stale = pki.refresh(v1, 3, ns="prov", serial=3)
    reg = await ctx.registry()
    reg.names[NAME] = answer(NAME, [v2, stale], [deleg])
    out = await ctx.resolve(await ctx.resolver(pki, reg.url), NAME, NOW)
    check(
        out.code == 1003 and out.detail.get("rule") == "stale_refresh",
        f"a stale refresh: {out.brief()}",
    )
    # an offer past its own exp, kept current by its refresh
    pki, deleg, old = _world(exp=NOW - 10, nbf=NOW - DAY)
    keep = pki.refresh(old, 9, ns="prov", serial=2, exp=NOW + 3600)
    reg = await ctx.registry()
    reg.names[NAME] = answer(NAME, [old, keep], [deleg])
    out = await ctx.resolve(await ctx.resolver(pki, reg.url), NAME, NOW)
    check(out.ok is not None, f"an expired offer with a valid refresh was refused: {out.brief()}")


# --- 14.2 caching ---------------------------------------------------------------------------


@s.case(
    8,
    "a cached answer is not used past its smallest TTL, nor at its earliest expiry",
    "REQ-RES-002",
    "REQ-REC-006",
    "REQ-REC-007",
)
async def cache_ttl(ctx: ResolverContext) -> None:
    """A cached answer MUST NOT be used after the smallest ttl of its records (default 300 s where a
    header has none) has passed since it was verified, and never at or after the earliest effective
    expiry of its records."""
    for ttl, exp, later in (
        (120, NOW + DAY, NOW + 120),
        (None, NOW + DAY, NOW + 300),
        (3600, NOW + 100, NOW + 100),
    ):
        pki, deleg, v1 = _world(ttl=ttl, exp=exp, serial=1)
        v2 = pki.offer(NAME, data.offer(title="v2"), ns="prov", serial=2, ttl=ttl)
        reg = await ctx.registry()
        reg.names[NAME] = answer(NAME, [v1], [deleg])
        handle = await ctx.resolver(pki, reg.url)
        check((await ctx.resolve(handle, NAME, NOW)).ok is not None, "the first answer was refused")
        reg.names[NAME] = answer(NAME, [v2], [deleg])
        out = await ctx.resolve(handle, NAME, later)
        check(
            out.ok is not None and _digests(out.ok.get("records")) == [digest_of(v2)],
            f"ttl {ttl}, exp +{exp - NOW}: at +{later - NOW} s the old answer was used "
            f"({out.brief()})",
        )


@s.case(9, "a cached NOT_FOUND expires after a bounded time", "REQ-RES-003")
async def negative_cache(ctx: ResolverContext) -> None:
    """A resolver MAY cache NOT_FOUND answers of the registry governing a name. Such an entry MUST
    expire after a bounded time (the reference default is 60 s). (The suite takes an hour as the
    largest acceptable bound.)"""
    pki, deleg, offer = _world()
    reg = await ctx.registry()
    handle = await ctx.resolver(pki, reg.url)
    check_equal((await ctx.resolve(handle, NAME, NOW)).code, 3001, "an unknown name")
    reg.names[NAME] = answer(NAME, [offer], [deleg])
    out = await ctx.resolve(handle, NAME, NOW + 3600)
    check(out.ok is not None, f"NOT_FOUND still cached an hour later: {out.brief()}")


@s.case(
    10,
    "stale answers only when asked for, marked stale, within bounds, never past expiry",
    "REQ-RES-005",
)
async def serve_stale(ctx: ResolverContext) -> None:
    """Serving stale answers MUST be an explicit option of the resolver, off by default. When it is
    on and every registry is unreachable, a resolver MAY answer from an entry whose TTL has passed,
    for at most a configured time after the TTL, MUST mark such an answer as stale, and MUST NOT
    serve it at or after any record's effective expiry."""
    pki, deleg, offer = _world(ttl=60, exp=NOW + 1000)
    reg = await ctx.registry()
    reg.names[NAME] = answer(NAME, [offer], [deleg])
    plain = await ctx.resolver(pki, reg.url)
    stale = await ctx.resolver(pki, reg.url, serve_stale=True, stale_max_s=300)
    for handle in (plain, stale):
        check((await ctx.resolve(handle, NAME, NOW)).ok is not None, "the first answer was refused")
    reg.down = True
    out = await ctx.resolve(plain, NAME, NOW + 100)
    check_equal(out.code, 6004, f"by default, no stale answer: {out.brief()}")
    out = await ctx.resolve(stale, NAME, NOW + 100)
    check(
        out.ok is not None and out.ok.get("stale") is True, f"a stale answer, marked: {out.brief()}"
    )
    out = await ctx.resolve(stale, NAME, NOW + 60 + 301)
    check_equal(out.code, 6004, f"beyond stale_max_s: {out.brief()}")
    pki, deleg, offer = _world(ttl=60, exp=NOW + 100)
    reg2 = await ctx.registry()
    reg2.names[NAME] = answer(NAME, [offer], [deleg])
    stale2 = await ctx.resolver(pki, reg2.url, serve_stale=True, stale_max_s=300)
    check((await ctx.resolve(stale2, NAME, NOW)).ok is not None, "the first answer was refused")
    reg2.down = True
    out = await ctx.resolve(stale2, NAME, NOW + 100)
    check(out.ok is None, f"a stale answer at the record's expiry: {out.brief()}")


# --- 14.3 catalogues ------------------------------------------------------------------------


def _catalogue_feed(pki: Pki, *, root_signer: Any = None) -> tuple[Feed, dict[str, dict[str, Any]]]:
    feed = Feed(pki)
    offers = {
        "gz.prov": pki.offer("gz.prov", data.GUIZHOU, ns="prov"),
        "tj.prov": pki.offer("tj.prov", data.TIANJIN, ns="prov"),
        "nm.prov": pki.offer("nm.prov", data.INNER_MONGOLIA, ns="prov"),
    }
    feed.add("put", pki.root_zone(signer=root_signer))
    feed.add("put", pki.delegation("prov"))
    for env in offers.values():
        feed.add("put", env)
    return feed, offers


async def _serve_feed(ctx: ResolverContext, feed: Feed, snapshot_at: int | None = None) -> Any:
    reg = await ctx.registry()
    reg.snapshot = (
        200,
        feed.snapshot_at(snapshot_at if snapshot_at is not None else len(feed.changes)),
    )
    reg.feed = feed
    return reg


async def _search_names(ctx: ResolverContext, handle: str, now: int = NOW) -> list[str] | None:
    out = await ctx.call(
        "catalogue.search", handle=handle, query={"currency": "CNY", "limit": 100}, now=now
    )
    if out.ok is None:
        return None
    return sorted(r["name"] for r in out.ok.get("results", []))


@s.case(
    11,
    "a catalogue learns service keys only from the verified root zone",
    "REQ-RES-010",
    "REQ-FEED-011",
)
async def catalogue_service_keys(ctx: ResolverContext) -> None:
    """A catalogue MUST learn the registry's service keys only from the root zone record verified
    against the trust anchor, and MUST verify every snapshot head and feed head with them."""
    from cid.signing import SigningKey

    pki = Pki()
    feed, _ = _catalogue_feed(pki, root_signer=SigningKey.generate())
    reg = await _serve_feed(ctx, feed)
    handle = await ctx.catalogue(pki, reg.url)
    out = await ctx.call("catalogue.sync", handle=handle, now=NOW)
    check(out.ok is None, "a root zone not signed by the trust anchor was trusted for the heads")
    pki2 = Pki()
    feed2, _ = _catalogue_feed(pki2)
    reg2 = await _serve_feed(ctx, feed2)
    snap = feed2.snapshot_at(len(feed2.changes))
    snap["head"] = pki2.head("cid.feed.snapshot", snap["head"]["body"], key=SigningKey.generate())
    reg2.snapshot = (200, snap)
    out = await ctx.call("catalogue.sync", handle=await ctx.catalogue(pki2, reg2.url), now=NOW)
    check(out.ok is None, "a snapshot head signed by another key was accepted")


@s.case(
    12,
    "a snapshot is accepted only when its signed digest and count match",
    "REQ-RES-011",
    "REQ-FEED-011",
    "REQ-FEED-010",
)
async def catalogue_snapshot(ctx: ResolverContext) -> None:
    """A catalogue starting empty MUST accept a snapshot only when its signed head verifies and the
    snapshot digest over the records it received equals the signed digest, with the same record
    count; otherwise it MUST refuse the snapshot with HEAD_MISMATCH (2010) and hold nothing of
    it."""
    pki = Pki()
    feed, offers = _catalogue_feed(pki)
    good = await _serve_feed(ctx, feed)
    handle = await ctx.catalogue(pki, good.url)
    out = await ctx.call("catalogue.sync", handle=handle, now=NOW)
    check(
        out.ok is not None and out.ok.get("rseq") == len(feed.changes),
        f"a valid snapshot: {out.brief()}",
    )
    check_equal(await _search_names(ctx, handle), sorted(offers), "offers held after the snapshot")
    for what in ("a record dropped", "a record added", "the count changed"):
        pki = Pki()
        feed, offers = _catalogue_feed(pki)
        reg = await _serve_feed(ctx, feed)
        snap = feed.snapshot_at(len(feed.changes))
        if what == "a record dropped":
            snap["records"] = snap["records"][:-1]
        elif what == "a record added":
            snap["records"].append({"envelope": pki.offer("zz.prov", data.GUIZHOU, ns="prov")})
        else:
            snap["head"] = pki.head("cid.feed.snapshot", {**snap["head"]["body"], "records": 99})
        reg.snapshot = (200, snap)
        handle = await ctx.catalogue(pki, reg.url)
        out = await ctx.call("catalogue.sync", handle=handle, now=NOW)
        check_equal(out.code, 2010, f"a snapshot with {what}: {out.brief()}")
        held = await _search_names(ctx, handle)
        check(not held, f"a refused snapshot left records behind: {held}")


@s.case(
    13,
    "a feed page is applied whole, only when it continues the chain without a gap",
    "REQ-RES-012",
    "REQ-FEED-003",
)
async def catalogue_feed(ctx: ResolverContext) -> None:
    """A catalogue MUST apply a feed page only after checking that its changes continue the last
    applied rseq without a gap, that the hash chain recomputed over them equals the chain of the
    page's signed head, and that the head's rseq is not below one already applied; a page that fails
    MUST be refused whole (HEAD_MISMATCH, or SERIAL_ROLLBACK for a lower head) and the catalogue
    MUST
    stay at its last applied rseq."""
    for what in ("a gap", "an altered change", "a lower head"):
        pki = Pki()
        feed, _ = _catalogue_feed(pki)
        at = len(feed.changes)
        reg = await _serve_feed(ctx, feed, snapshot_at=at)
        handle = await ctx.catalogue(pki, reg.url)
        first = await ctx.call("catalogue.sync", handle=handle, now=NOW)
        check(first.ok is not None, f"the initial snapshot: {first.brief()}")
        new1 = pki.offer("a.prov", data.GUIZHOU, ns="prov")
        new2 = pki.offer("b.prov", data.GUIZHOU, ns="prov")
        feed.add("put", new1)
        feed.add("put", new2)
        page = feed.page(at)
        expected: tuple[int, ...] = (2010,)
        if what == "a gap":
            page = {**page, "changes": page["changes"][1:]}
        elif what == "an altered change":
            page["changes"][0] = {
                **page["changes"][0],
                "envelope": pki.offer("a.prov", data.TIANJIN, ns="prov"),
            }
        else:
            page = {
                "changes": [],
                "head": pki.head("cid.feed.head", {"chain": feed.chains[at - 1], "rseq": at - 1}),
            }
            expected = (2010, 2006)
        reg.feed_pages[at] = (200, page)
        out = await ctx.call("catalogue.sync", handle=handle, now=NOW)
        check(out.code in expected, f"a page with {what}: {out.brief()}, expected {expected}")
        names = await _search_names(ctx, handle) or []
        check(
            "a.prov" not in names and "b.prov" not in names, f"{what}: a refused page was applied"
        )
        del reg.feed_pages[at]
        reg.feed_since.clear()
        out = await ctx.call("catalogue.sync", handle=handle, now=NOW)
        check(
            out.ok is not None and out.ok.get("rseq") == at + 2,
            f"{what}, then a good page: {out.brief()}",
        )
        check(
            reg.feed_since[:1] == [at],
            f"{what}: the catalogue resumed from {reg.feed_since[:1]}, not {at}",
        )


@s.case(
    14,
    "catalogue searches answer like the registry: verified, unexpired offers only",
    "REQ-RES-013",
)
async def catalogue_search(ctx: ResolverContext) -> None:
    """Every record a catalogue holds MUST have been verified against the namespace tree from the
    trust anchor ... Searches of the catalogue MUST answer exactly as the registry's search (§7.5)
    over the same records at the same time, and MUST NOT return an offer at or after its effective
    expiry."""
    pki = Pki()
    feed, _ = _catalogue_feed(pki)
    short = pki.offer("short.prov", data.GUIZHOU, ns="prov", exp=NOW + 100)
    feed.add("put", short)
    reg = await _serve_feed(ctx, feed)
    handle = await ctx.catalogue(pki, reg.url)
    check((await ctx.call("catalogue.sync", handle=handle, now=NOW)).ok is not None, "sync failed")
    query = {
        "currency": "CNY",
        "class": "general",
        "demand": {"memory_mib": 2048, "storage_gib": 100, "vcpu": 1},
        "duration_s": data.WORKED_DEMAND_S,
        "order": ["cost"],
        "limit": 10,
    }
    out = await ctx.call("catalogue.search", handle=handle, query=query, now=NOW)
    check(out.ok is not None, f"search: {out.brief()}")
    assert out.ok is not None
    got = [(r["name"], r["cost"]["total"]) for r in out.ok["results"]]
    check_equal(
        got,
        [
            ("gz.prov", "30"),
            ("short.prov", "30"),
            ("nm.prov", "33.271232876712328768"),
            ("tj.prov", "65.7"),
        ],
        "the worked example, ranked by cost",
    )
    later = await _search_names(ctx, handle, now=NOW + 100)
    check(
        later is not None and "short.prov" not in later, f"an expired offer was returned: {later}"
    )


@s.case(
    15,
    "an unreachable registry is a pause: answers continue, sync resumes where it stopped",
    "REQ-RES-014",
)
async def catalogue_pause(ctx: ResolverContext) -> None:
    """A catalogue MUST treat an unreachable registry as a pause: it keeps answering from what it
    holds, retries with a bounded back-off, and resumes from its last applied rseq when the registry
    answers again."""
    pki = Pki()
    feed, offers = _catalogue_feed(pki)
    reg = await _serve_feed(ctx, feed)
    handle = await ctx.catalogue(pki, reg.url)
    check((await ctx.call("catalogue.sync", handle=handle, now=NOW)).ok is not None, "sync failed")
    at = len(feed.changes)
    reg.down = True
    await ctx.call("catalogue.sync", handle=handle, now=NOW + 10)
    check_equal(
        await _search_names(ctx, handle, now=NOW + 10), sorted(offers), "answers while paused"
    )
    feed.add("put", pki.offer("new.prov", data.GUIZHOU, ns="prov"))
    reg.down = False
    reg.feed_since.clear()
    out = await ctx.call("catalogue.sync", handle=handle, now=NOW + 20)
    check(out.ok is not None and out.ok.get("rseq") == at + 1, f"resuming: {out.brief()}")
    check(
        reg.feed_since and reg.feed_since[0] == at, f"resumed from {reg.feed_since[:1]}, not {at}"
    )
    check(
        "new.prov" in (await _search_names(ctx, handle, now=NOW + 20) or []),
        "the new offer is missing",
    )


_GZ_NO_RTT = {**data.GUIZHOU, "network": {}}
"""An offer in CN-GZ that states no RTT of its own: only a latency model can place it."""


def _model(version: int, gz_he_us: int = 2000, **extra: Any) -> dict[str, Any]:
    return {
        "id": "conformance-model",
        "version": version,
        "circles": [{"name": "metro", "rtt_us": 1000, "regions": ["CN-BJ", "CN-TJ"]}],
        "rtt": [{"a": "CN-GZ", "b": "CN-HE", "rtt_us": gz_he_us}],
        **extra,
    }


async def _rtt_of_far(ctx: ResolverContext, handle: str) -> Any:
    query = {"within": "far.prov", "near": {"region": "CN-HE"}, "order": ["latency"]}
    out = await ctx.call("catalogue.search", handle=handle, query=query, now=NOW)
    check(out.ok is not None, f"search: {out.brief()}")
    assert out.ok is not None
    results = out.ok.get("results", [])
    check_equal([r["name"] for r in results], ["far.prov"], "the offer")
    return results[0].get("rtt_us")


@s.case(
    16,
    "a catalogue ranks by the registry's verified latency model, never a forged or older one",
    "REQ-RES-015",
    "REQ-QRY-066",
    "REQ-QRY-067",
)
async def catalogue_latency_model(ctx: ResolverContext) -> None:
    """A catalogue ... that ranks by a registry's published latency model MUST verify the
    latency-model envelope as it verifies heads ... MUST refuse, and keep the model it holds, a
    model whose version is below that of a model it has accepted (SERIAL_ROLLBACK) and a model
    with the same version but a different body (HEAD_MISMATCH)."""
    from cid.signing import SigningKey

    pki = Pki()
    feed, _ = _catalogue_feed(pki)
    feed.add("put", pki.offer("far.prov", _GZ_NO_RTT, ns="prov"))
    reg = await _serve_feed(ctx, feed)
    handle = await ctx.catalogue(pki, reg.url)
    check((await ctx.call("catalogue.sync", handle=handle, now=NOW)).ok is not None, "sync failed")
    reg.latency_model = (200, pki.latency_model(_model(2)))
    out = await ctx.call("catalogue.latency_model", handle=handle, now=NOW)
    check(out.ok is not None, f"a valid latency model was refused: {out.brief()}")
    check_equal(await _rtt_of_far(ctx, handle), 2000, "the model's RTT from CN-GZ to CN-HE")

    tampered = pki.latency_model(_model(3))
    tampered["body"]["rtt"][0]["rtt_us"] = 1
    invalid = _model(3)
    invalid["circles"].append(dict(invalid["circles"][0]))  # two circles of one name
    attempts: list[tuple[str, dict[str, Any], int]] = [
        ("a tampered model", tampered, 2001),
        ("a model signed by a key that is not a service key",
         pki.latency_model(_model(3, 1), key=SigningKey.generate()), 2002),
        ("a model of a lower version", pki.latency_model(_model(1, 1)), 2006),
        ("another model under the held version", pki.latency_model(_model(2, 1)), 2010),
        ("a model breaking Table 7-14 (two circles of one name)", pki.latency_model(invalid), 1003),
        ("an expired model", pki.latency_model(_model(3, 1), at=NOW - 2 * 3600), 2004),
    ]  # fmt: skip
    for what, envelope, code in attempts:
        reg.latency_model = (200, envelope)
        out = await ctx.call("catalogue.latency_model", handle=handle, now=NOW)
        check(out.ok is None, f"{what} was accepted")
        check_equal(out.code, code, f"the error for {what}")
        check_equal(await _rtt_of_far(ctx, handle), 2000, f"the RTT after {what}")
    # the held model re-signed later is the same model, not a conflict
    reg.latency_model = (200, pki.latency_model(_model(2), at=NOW + 10))
    out = await ctx.call("catalogue.latency_model", handle=handle, now=NOW + 10)
    check(out.ok is not None, f"the held model, re-signed, was refused: {out.brief()}")
