"""Table-driven registry cases: a record broken in one way must be refused for that reason."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..case import Section
from .context import RegistryContext, World

__all__ = ["accepts", "refuses"]

Body = Mapping[str, Any] | Callable[[World], Mapping[str, Any]]


def refuses(
    section: Section,
    n: int,
    title: str,
    reqs: tuple[str, ...],
    body: Body,
    *,
    rtype: str = "offer",
    code: int | tuple[int, ...] = 1003,
    field: str | None = None,
    under: str | None = None,
    rule: str | None = None,
    doc: str = "",
) -> None:
    """Register a case: a correctly signed ``rtype`` record with ``body`` is refused."""

    async def run(ctx: RegistryContext) -> None:
        w = await ctx.world()
        value = body(w) if callable(body) else body
        env = ctx.sign_as(w, rtype, ctx.unique(), value)
        await ctx.refused(env, code, field=field, under=under, rule=rule)
        ctx.expect_error(await ctx.resolve(env["header"]["sub"]), 3001)

    run.__doc__ = doc
    section.case(n, title, *reqs, writes=True)(run)


def accepts(
    section: Section,
    n: int,
    title: str,
    reqs: tuple[str, ...],
    bodies: list[Body],
    *,
    rtype: str = "offer",
    doc: str = "",
) -> None:
    """Register a case: each body, correctly signed, is accepted and served exactly as sent."""

    async def run(ctx: RegistryContext) -> None:
        from ..case import check_equal

        w = await ctx.world()
        for body in bodies:
            value = body(w) if callable(body) else body
            env = ctx.sign_as(w, rtype, ctx.unique(), value)
            await ctx.accepted(env)
            got = await ctx.resolve(env["header"]["sub"])
            records = got.value().get("records", []) if got.status == 200 else []
            check_equal(records, [env], "the record served back")

    run.__doc__ = doc
    section.case(n, title, *reqs, writes=True)(run)
