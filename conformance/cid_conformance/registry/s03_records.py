"""§3 Records: record types, closed wire models, zone, offer, delegation, key rotation, tombstone,
refresh."""

from __future__ import annotations

from typing import Any

from cid.signing import SigningKey

from ..case import Section, check, check_equal
from ..signed import digest_of, key_value
from . import data
from .context import RegistryContext, World
from .data import offer
from .tables import accepts, refuses

s = Section("registry", "3", "Records")

G = data.GUIZHOU


def _zone(w: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"display_name": "zone", "service_keys": [key_value(w.service)]}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def _keys(n: int) -> list[dict[str, str]]:
    return [key_value(SigningKey.generate()) for _ in range(n)]


# [REQ-REC-002] closed models, types
refuses(
    s,
    1,
    "a body member the model does not define is extra_forbidden, named in field",
    ("REQ-REC-002", "REQ-GEN-011"),
    offer(tags=["x"]),
    field="body.tags",
    rule="extra_forbidden",
)
refuses(
    s,
    2,
    "an integer member written as a string is refused",
    ("REQ-REC-002", "REQ-GEN-002"),
    offer(availability={"units_free": "10", "units_total": 80}),
    field="body.availability.units_free",
)
refuses(
    s,
    3,
    "a string member written as a number is refused",
    ("REQ-REC-002",),
    offer(title=42),
    field="body.title",
)
refuses(
    s,
    4,
    "an integer member written as a boolean is refused",
    ("REQ-REC-002",),
    offer(availability={"units_free": True, "units_total": 80}),
    field="body.availability.units_free",
)
# [REQ-REC-003] defaults and null
refuses(
    s,
    5,
    "a required member that is null is refused",
    ("REQ-REC-003",),
    offer(title=None),
    field="body.title",
)
accepts(
    s,
    6,
    "members with defaults may be absent; null optional members are absence",
    ("REQ-REC-003",),
    [
        {
            k: v
            for k, v in G.items()
            if k not in ("network", "software", "compliance", "ext", "energy")
        },
        offer(energy=None),
    ],
)


@s.case(7, "a null optional member is treated as absent", "REQ-REC-003", "REQ-QRY-021", writes=True)
async def null_is_absence(ctx: RegistryContext) -> None:
    """a receiver MUST treat a null value there as absence."""
    w = await ctx.world()
    rel = ctx.unique("null")
    await ctx.accepted(ctx.sign_as(w, "offer", f"a.{rel}", offer(energy=None)))
    await ctx.accepted(ctx.sign_as(w, "offer", f"b.{rel}", G))
    found = (await ctx.search({"within": w.name(rel), "renewable_share_min": "0"})).value()[
        "results"
    ]
    check_equal([r["name"] for r in found], [w.name(f"b.{rel}")], "offers with an energy map")


# [REQ-REC-004] field paths
refuses(
    s,
    8,
    "field is the dotted path, array elements by index",
    ("REQ-REC-004", "REQ-ENC-007"),
    offer(
        price={
            **G["price"],
            "items": [
                G["price"]["items"][0],
                {"amount": "1.50", "per": "month", "resource": "memory_gib"},
            ],
        }
    ),
    field="body.price.items.1.amount",
    rule="decimal_text",
)
# [REQ-REC-001] identity
refuses(
    s,
    9,
    "a typ that names no record type is refused",
    ("REQ-REC-001",),
    G,
    rtype="offers",
    field="header.typ",
    rule="typ",
)


@s.case(
    10,
    "a name holds one current record per type, several types side by side",
    "REQ-REC-001",
    "REQ-QRY-011",
    writes=True,
)
async def one_per_type(ctx: RegistryContext) -> None:
    """Like a DNS name holding one RRset per type, a name holds at most one current record per
    type: the current record of an identity is the valid version with the highest serial."""
    w = await ctx.world()
    rel = ctx.unique()
    key = SigningKey.generate()
    await ctx.accepted(ctx.sign_as(w, "offer", rel, G, serial=1))
    await ctx.accepted(ctx.sign_as(w, "offer", rel, offer(title="two"), serial=2))
    zone = ctx.sign_as(w, "zone", rel, _zone(w), serial=1)
    await ctx.accepted(zone)
    records = (await ctx.resolve(w.name(rel))).value()["records"]
    check_equal(
        [(r["header"]["typ"], r["header"]["serial"]) for r in records],
        [("cid.record.offer", 2), ("cid.record.zone", 1)],
        "records of the name",
    )
    del key


# [REQ-REC-010] .. [REQ-REC-012] zone
refuses(
    s,
    11,
    "a zone member outside Table 3-2 is refused",
    ("REQ-REC-010",),
    lambda w: _zone(w, owner="me"),
    rtype="zone",
    field="body.owner",
    rule="extra_forbidden",
)
refuses(
    s,
    12,
    "a zone without display_name is refused",
    ("REQ-REC-010",),
    lambda w: _zone(w, display_name=...),
    rtype="zone",
    field="body.display_name",
)
refuses(
    s,
    13,
    "a zone with no service key is refused",
    ("REQ-REC-010",),
    lambda w: _zone(w, service_keys=[]),
    rtype="zone",
    under="body.service_keys",
)
refuses(
    s,
    14,
    "a zone with nine service keys is refused",
    ("REQ-REC-010",),
    lambda w: _zone(w, service_keys=_keys(9)),
    rtype="zone",
    under="body.service_keys",
)
refuses(
    s,
    15,
    "an endpoint Table 3-3 does not define is refused",
    ("REQ-REC-011",),
    lambda w: _zone(w, endpoints={"query": "https://x.example/q"}),
    rtype="zone",
    field="body.endpoints.query",
    rule="extra_forbidden",
)
refuses(
    s,
    16,
    "an endpoint that is not an http(s) URL is refused",
    ("REQ-REC-011",),
    lambda w: _zone(w, endpoints={"negotiate": "ftp://x.example/n"}),
    rtype="zone",
    under="body.endpoints.negotiate",
)
refuses(
    s,
    17,
    "a relative endpoint URL is refused",
    ("REQ-REC-011",),
    lambda w: _zone(w, endpoints={"invoke": "/cid/invoke"}),
    rtype="zone",
    under="body.endpoints.invoke",
)
refuses(
    s,
    18,
    "an endpoint URL over 512 characters is refused",
    ("REQ-REC-011",),
    lambda w: _zone(w, endpoints={"invoke": "https://x.example/" + "a" * 500}),
    rtype="zone",
    under="body.endpoints.invoke",
)
refuses(
    s,
    19,
    "a contact member outside Table 3-4 is refused",
    ("REQ-REC-012",),
    lambda w: _zone(w, contact={"org": "o", "phone": "1"}),
    rtype="zone",
    field="body.contact.phone",
    rule="extra_forbidden",
)
refuses(
    s,
    20,
    "a contact without org is refused",
    ("REQ-REC-012",),
    lambda w: _zone(w, contact={"email": "a@b"}),
    rtype="zone",
    field="body.contact.org",
)
refuses(
    s,
    21,
    "a contact email without @ is refused",
    ("REQ-REC-012",),
    lambda w: _zone(w, contact={"email": "noc.example", "org": "o"}),
    rtype="zone",
    field="body.contact.email",
)
accepts(
    s,
    22,
    "a zone with http and https endpoints and a full contact is accepted",
    ("REQ-REC-010", "REQ-REC-011", "REQ-REC-012"),
    [
        lambda w: _zone(
            w,
            endpoints={"negotiate": "http://x.example/n", "invoke": "https://x.example/i"},
            contact={"email": "noc@x.example", "org": "o", "url": "https://x.example"},
            ext={"conf.x": 1},
        )
    ],
    rtype="zone",
)
# [REQ-REC-020], [REQ-REC-021] offer
refuses(
    s,
    23,
    "an offer without title is refused",
    ("REQ-REC-020",),
    {k: v for k, v in G.items() if k != "title"},
    field="body.title",
)
refuses(
    s,
    24,
    "an offer without price is refused",
    ("REQ-REC-020",),
    {k: v for k, v in G.items() if k != "price"},
    field="body.price",
)
refuses(
    s,
    25,
    "a general offer without cpu is SCHEMA_VIOLATION class_shape",
    ("REQ-REC-021",),
    offer(unit={"cpu": ...}),
    under="body",
    rule="class_shape",
)
refuses(
    s,
    26,
    "a general offer with 0 vCPU is SCHEMA_VIOLATION class_shape",
    ("REQ-REC-021",),
    offer(unit={"cpu": {"arch": "x86_64"}, "vcpu": 0}),
    under="body",
    rule="class_shape",
)
refuses(
    s,
    27,
    "an intelligent offer without accelerators is class_shape",
    ("REQ-REC-021",),
    offer(**{"class": "intelligent"}),
    under="body",
    rule="class_shape",
)
refuses(
    s,
    28,
    "a super offer without hpc is class_shape",
    ("REQ-REC-021",),
    offer(**{"class": "super"}),
    under="body",
    rule="class_shape",
)
refuses(
    s,
    29,
    "a storage offer without storage is class_shape",
    ("REQ-REC-021",),
    offer(**{"class": "storage"}),
    under="body",
    rule="class_shape",
)
# [REQ-REC-030] delegation
refuses(
    s,
    30,
    "a delegation member outside Table 3-6 is refused",
    ("REQ-REC-030",),
    lambda w: {"keys": _keys(1), "owner": "x"},
    rtype="delegation",
    field="body.owner",
    rule="extra_forbidden",
)
refuses(
    s,
    31,
    "a delegation with no key is refused",
    ("REQ-REC-030",),
    {"keys": []},
    rtype="delegation",
    under="body.keys",
)
refuses(
    s,
    32,
    "a delegation with nine keys is refused",
    ("REQ-REC-030",),
    lambda w: {"keys": _keys(9)},
    rtype="delegation",
    under="body.keys",
)
refuses(
    s,
    33,
    "a registry URL that is not http(s) is refused",
    ("REQ-REC-030",),
    lambda w: {"keys": _keys(1), "registries": ["ftp://r.example/cid"]},
    rtype="delegation",
    under="body.registries",
)
refuses(
    s,
    34,
    "nine registries are refused",
    ("REQ-REC-030",),
    lambda w: {"keys": _keys(1), "registries": [f"https://r{i}.example" for i in range(9)]},
    rtype="delegation",
    under="body.registries",
)
# [REQ-REC-040] key rotation (the name must be delegated: the apex itself)


@s.case(35, "key rotation bodies are closed and bounded", "REQ-REC-040", writes=True)
async def rotation_bodies(ctx: RegistryContext) -> None:
    """A key rotation body MUST have the members of Table 3-7 and no others (keys: 1–8 public keys;
    revoked: 0–16 key ids, each at most 64 characters)."""
    w = await ctx.world()
    rel = ctx.unique("kr")
    anchor = SigningKey.generate()
    await ctx.accepted(ctx.sign_as(w, "delegation", rel, {"keys": [key_value(anchor)]}))
    for body, where in (
        ({"keys": _keys(1), "extra": 1}, "body.extra"),
        ({"keys": []}, "body.keys"),
        ({"keys": _keys(9)}, "body.keys"),
        ({"keys": _keys(1), "revoked": [f"kid{i:019d}" for i in range(17)]}, "body.revoked"),
        ({"keys": _keys(1), "revoked": ["k" * 65]}, "body.revoked"),
    ):
        await ctx.refused(ctx.sign_as(w, "keyrotation", rel, body, key=anchor), 1003, under=where)
    await ctx.accepted(
        ctx.sign_as(w, "keyrotation", rel, {"keys": _keys(8), "revoked": []}, key=anchor)
    )


# [REQ-REC-050] tombstone
@s.case(
    36,
    "a tombstone body is exactly {target} naming a record type other than refresh",
    "REQ-REC-050",
    writes=True,
)
async def tombstone_bodies(ctx: RegistryContext) -> None:
    """A tombstone body MUST be the map {"target": <type>}, where <type> is zone, offer, delegation
    or keyrotation (a refresh is never the target)."""
    w = await ctx.world()
    rel = ctx.unique()
    await ctx.accepted(ctx.sign_as(w, "offer", rel, G))
    for body, where in (
        ({"target": "refresh"}, "body.target"),
        ({"target": "bogus"}, "body.target"),
        ({"target": "offer", "why": "x"}, "body.why"),
        ({}, "body.target"),
    ):
        await ctx.refused(ctx.sign_as(w, "tombstone", rel, body, serial=2), 1003, under=where)
    check((await ctx.resolve(w.name(rel))).status == 200, "a refused tombstone deleted the offer")


# [REQ-REC-060] refresh
@s.case(
    37,
    "a refresh body is exactly {base, units_free} with a digest base",
    "REQ-REC-060",
    "REQ-QRY-006",
    writes=True,
)
async def refresh_bodies(ctx: RegistryContext) -> None:
    """A refresh body MUST be the map {"base": <digest>, "units_free": <integer 0 … 2⁵³−1>}, where
    base is the digest (43 base64url characters) of the offer version it applies to."""
    w = await ctx.world()
    rel = ctx.unique()
    env = ctx.sign_as(w, "offer", rel, G)
    await ctx.accepted(env)
    base = digest_of(env)
    for body, where in (
        ({"base": base, "units_free": 1, "x": 1}, "body.x"),
        ({"base": base[:-1], "units_free": 1}, "body.base"),
        ({"base": base + "=", "units_free": 1}, "body.base"),
        ({"base": base, "units_free": -1}, "body.units_free"),
        ({"base": base}, "body.units_free"),
    ):
        await ctx.refused(ctx.sign_as(w, "refresh", rel, body, serial=2), 1003, under=where)
