"""Error hierarchy and the wire error object ([REQ-ERR-001]..[REQ-ERR-004])."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cid import errors as E

SPEC = Path(__file__).resolve().parents[1] / "spec" / "10-errors.md"


def test_codes_unique_and_ranged() -> None:
    """REQ-ERR-001: codes are unique; each sits in its kind's thousand-range."""
    table = E.error_registry()
    ranges = {
        E.DecodeError: 1000,
        E.VerificationError: 2000,
        E.ResolutionError: 3000,
        E.NegotiationError: 4000,
        E.InvocationError: 5000,
        E.ServiceError: 6000,
    }
    for code, cls in table.items():
        assert cls.code == code
        assert re.fullmatch(r"[A-Z][A-Z0-9_]+", cls.name)
        for base, start in ranges.items():
            if issubclass(cls, base):
                assert start <= code < start + 1000, cls
    names = [c.name for c in table.values()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("cls", sorted(E.error_registry().values(), key=lambda c: c.code))
def test_wire_round_trip(cls: type[E.CidError]) -> None:
    """REQ-ERR-002/003: to_wire and from_wire round-trip for every registered error."""
    err = cls("something happened", field="body.price", detail={"rule": "x"})
    back = E.from_wire(err.to_wire())
    assert type(back) is cls
    assert back.to_wire() == err.to_wire()
    assert str(cls.code) in str(err)


def test_unknown_code_maps_to_range() -> None:
    """REQ-ERR-004: an unknown code is understood by its thousand-range."""
    err = E.from_wire({"code": 2999, "name": "FUTURE_THING", "message": "m"})
    assert isinstance(err, E.VerificationError)
    assert err.detail["wire_code"] == 2999
    assert err.detail["wire_name"] == "FUTURE_THING"
    assert type(E.from_wire({"code": 9123, "message": "m"})) is E.CidError


@given(
    st.recursive(
        st.none() | st.integers() | st.text() | st.booleans(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=10,
    )
)
def test_from_wire_never_raises(obj: object) -> None:
    """from_wire takes anything and returns a CidError."""
    assert isinstance(E.from_wire(obj), E.CidError)


def test_from_wire_sanitises_members() -> None:
    err = E.from_wire({"code": 2001, "message": 5, "field": 3, "detail": []})
    assert isinstance(err, E.SignatureInvalidError)
    assert err.message == "5" and err.field is None and err.detail == {}
    assert isinstance(E.from_wire({"code": True}), E.DecodeError)


def test_spec_table_matches_code() -> None:
    """The registry table in spec section 10 lists exactly the classes in cid.errors."""
    text = SPEC.read_text(encoding="utf-8")
    rows = re.findall(
        r"^\|\s*(\d{4})\s*\|\s*([A-Z_]+)\s*\|\s*(\d{3})\s*\|\s*(yes|no)\s*\|", text, re.M
    )
    spec = {int(c): (n, int(s), r == "yes") for c, n, s, r in rows}
    code = {
        c: (cls.name, cls.status, cls.retryable) for c, cls in E.error_registry().items() if c != 0
    }
    assert spec == code
