"""``python -m cid_conformance``: the ``cid-conformance`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
