"""`make demo` runs end to end (issue 2's walk-through)."""

from __future__ import annotations

import subprocess
import sys

from cid import demo
from cid.examples import EPOCH


def test_demo_in_process(capsys) -> None:  # type: ignore[no-untyped-def]
    assert demo.main(["--now", str(EPOCH + 100)]) == 0
    out = capsys.readouterr().out
    assert out.count("verified") >= 3
    for name in (
        "SIGNATURE_INVALID",
        "KEY_UNKNOWN",
        "KEY_NOT_AUTHORISED",
        "SERIAL_ROLLBACK",
        "EXPIRED",
    ):
        assert name in out
    assert "demo complete" in out


def test_demo_as_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cid.demo"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "demo complete" in out.stdout
