"""cid-conformance: the conformance suite of the cid protocol.

Run by providers and registry operators against their endpoints in CI, and by
library authors against their parser and verifier (through an adapter).
See ``conformance/README.md``.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
