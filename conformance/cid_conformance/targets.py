"""The targets ``cid-conformance`` knows, by name."""

from __future__ import annotations

from typing import Final

from .provider import TARGET as PROVIDER
from .registry import TARGET as REGISTRY
from .resolver import TARGET as RESOLVER
from .target import Target
from .vectors import TARGET as VECTORS

__all__ = ["TARGETS"]

TARGETS: Final[dict[str, Target]] = {t.name: t for t in (REGISTRY, PROVIDER, VECTORS, RESOLVER)}
