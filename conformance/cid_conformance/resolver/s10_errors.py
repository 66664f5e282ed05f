"""§10 Errors, as a receiver: the implementation's resolver rebuilding registry errors."""

from __future__ import annotations

from ..adapter import Outcome
from ..case import Section, check_equal
from . import ResolverContext
from .scripted import Pki, problem

s = Section("resolver", "10", "Errors")

NAME = "gz.prov"


async def _answered(ctx: ResolverContext, reply: tuple[int, object]) -> Outcome:
    pki = Pki()
    reg = await ctx.registry()
    reg.names[NAME] = reply
    return await ctx.resolve(await ctx.resolver(pki, reg.url), NAME, 1_800_000_000)


@s.case(
    1,
    "errors are decided by code: not by name, message or rule",
    "REQ-ERR-005",
    "REQ-ERR-003",
    "REQ-ERR-008",
)
async def by_code(ctx: ResolverContext) -> None:
    """message is for people: a receiver MUST NOT parse it or base any decision on it, and MUST
    decide by code (not by name, which is a mnemonic for the same row) ... a receiver MUST NOT
    depend
    on any detail.rule for its decisions."""
    reply = problem(
        3001, "SERVICE_ERROR", 404, "unavailable, retry later (503)", rule="retry_later"
    )
    out = await _answered(ctx, reply)
    check_equal(out.code, 3001, f"NOT_FOUND named otherwise: {out.brief()}")


@s.case(
    2,
    "an unknown code is understood by its range; the received code and name are kept",
    "REQ-ERR-004",
    "REQ-ERR-003",
)
async def unknown_code(ctx: ResolverContext) -> None:
    """an unknown code c is treated as the error whose code is ⌊c / 1000⌋ × 1000 ... The receiver
    MUST keep the code and name it received, as detail.wire_code and detail.wire_name of the error
    it
    reports."""
    out = await _answered(ctx, problem(1042, "FUTURE_DECODE_ERROR", 400, "a future rule"))
    check_equal(out.code, 1000, "an unknown 1xxx code is MALFORMED")
    detail = out.detail
    check_equal(
        (detail.get("wire_code"), detail.get("wire_name")),
        (1042, "FUTURE_DECODE_ERROR"),
        "detail.wire_code and detail.wire_name",
    )


@s.case(3, "malformed error objects are MALFORMED, never a crash", "REQ-ERR-003", "REQ-REG-004")
async def malformed_errors(ctx: ResolverContext) -> None:
    """It MUST NOT fail on a malformed error object: an object that is not a map, or whose code is
    not an integer (booleans are not integers), is itself reported as MALFORMED (1000) ... A client
    MUST report an error response without a cid map as MALFORMED (1000) with detail.status the HTTP
    status."""
    for body in (
        {"type": "about:blank", "status": 400},
        {"cid": "NOT_FOUND"},
        {"cid": {"code": True}},
        {"cid": {"code": "3001", "name": "NOT_FOUND"}},
    ):
        out = await _answered(ctx, (400, body))
        check_equal(out.code, 1000, f"error body {body}: {out.brief()}")
    out = await _answered(ctx, (400, {"status": 400}))
    check_equal(out.detail.get("status"), 400, "detail.status of an error without cid")
    lax = {
        "cid": {
            "code": 3001,
            "name": "NOT_FOUND",
            "message": 42,
            "field": 7,
            "detail": "x",
            "retryable": False,
        }
    }
    out = await _answered(ctx, (404, lax))
    check_equal(
        out.code,
        3001,
        f"a loose but usable error object: {out.brief()}",
    )
