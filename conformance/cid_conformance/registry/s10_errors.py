"""§10 Errors: the registered rule tokens (the registry's answers; problem bodies are in §12.3)."""

from __future__ import annotations

from ..case import Section
from ..spec import Level
from . import data
from .context import RegistryContext

s = Section("registry", "10", "Errors")


@s.case(
    1,
    "decode and model errors carry the registered detail.rule tokens",
    "REQ-ERR-008",
    writes=True,
    clause=Level.SHOULD,
)
async def rule_tokens(ctx: RegistryContext) -> None:
    """For the decode and model errors of the 1xxx range, detail.rule SHOULD be the token of Table
    10-4 when the failure is one the table lists."""
    w = await ctx.world()
    for body, rule in (
        (b'{"limit":1,"limit":1}', "unique_keys"),
        (b'{"limit":1.5}', "no_float"),
        (b'{"limit":9007199254740993}', "safe_integer"),
        (b"{", "syntax"),
        (b'{"limit":1,"x":' + b"[" * 17 + b"]" * 17 + b"}", "max_depth"),
    ):
        reply = await ctx.request(
            "POST", "/v1/search", body=body, content_type="application/cid+json"
        )
        ctx.expect_error(reply, (1000, 1002, 1004), rule=rule)
    env = ctx.sign_as(w, "offer", ctx.unique(), data.offer(extra=1))
    await ctx.refused(env, 1003, rule="extra_forbidden")
    env = ctx.sign_as(w, "offer", ctx.unique(), data.GUIZHOU)
    env["header"]["typ"] = "cid.nothing"
    await ctx.refused(env, 1003, rule="typ")
