"""§1 Overview: the conventions common to all sections (times, durations, quantities)."""

from __future__ import annotations

from ..case import Section
from ..signed import sign
from . import data
from .context import RegistryContext

s = Section("registry", "1", "Overview")


@s.case(1, "time instants and durations are integer seconds", "REQ-GEN-001", writes=True)
async def integer_seconds(ctx: RegistryContext) -> None:
    """A time instant in any cid object MUST be an integer number of seconds since
    1970-01-01T00:00:00Z ... and a duration MUST be an integer number of seconds."""
    w = await ctx.world()
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    hdr = env["header"]
    for member, value, code in (
        ("exp", str(hdr["exp"]), 1003),
        ("ttl", "300", 1003),
        ("nbf", True, 1003),
    ):
        await ctx.refused(
            sign({**hdr, member: value}, env["body"], [w.anchor]), code, field=f"header.{member}"
        )
    body = data.offer(price={**data.GUIZHOU["price"], "minimum_term_s": "2628000"})
    await ctx.refused(
        ctx.sign_as(w, "offer", ctx.unique(), body), 1003, field="body.price.minimum_term_s"
    )
    reply = await ctx.search({"limit": 1, "duration_s": "3600", "within": "x.invalid"})
    ctx.expect_error(reply, 1003)


@s.case(
    2, "quantities with a unit are non-negative integers in that unit", "REQ-GEN-002", writes=True
)
async def quantities(ctx: RegistryContext) -> None:
    """A body member holding a quantity with a unit MUST carry the unit as a suffix of its member
    name ... and its value MUST be a non-negative integer in that unit unless the section defining
    the member makes it a decimal string."""
    w = await ctx.world()
    for unit, field in (
        ({"memory_mib": -2048}, "body.unit.memory_mib"),
        ({"storage_gib": -1}, "body.unit.storage_gib"),
        ({"memory_mib": "2048"}, "body.unit.memory_mib"),
    ):
        body = data.offer(unit={**data.GUIZHOU["unit"], **unit})
        await ctx.refused(ctx.sign_as(w, "offer", ctx.unique(), body), 1003, field=field)
    body = data.offer(network={"bandwidth_mbps": -1})
    await ctx.refused(
        ctx.sign_as(w, "offer", ctx.unique(), body), 1003, field="body.network.bandwidth_mbps"
    )
    reply = await ctx.request(
        "POST",
        "/v1/search",
        body=b'{"limit":1,"memory_mib_min":2048.5}',
        content_type="application/cid+json",
    )
    ctx.expect_error(reply, 1004, rule="no_float")
