"""Signed envelopes: structure, verification order, windows, serials ([REQ-SIG-020]..035)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cid import examples as ex
from cid.envelope import Envelope, open_record, seal, sign_record
from cid.errors import (
    CidError,
    DecodeError,
    ExpiredError,
    KeyUnknownError,
    NotYetValidError,
    SchemaError,
    SerialRollbackError,
    SignatureInvalidError,
)
from cid.record import OfferBody

NOW = ex.EPOCH + 60


def _offer(serial: int = 3) -> Envelope:
    return sign_record(
        ex.guizhou_offer(),
        name="gz-pool.ctyun",
        serial=serial,
        key=ex.provider_key(),
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 3600,
        ttl=300,
    ).envelope


def _keys() -> dict:
    k = ex.provider_key().public_key
    return {k.kid: k}


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_sign_encode_open(encoding: str) -> None:
    """REQ-SIG-030: decode, verify, then parse the body."""
    env = _offer()
    rec = open_record(env.encode(encoding), _keys(), now=NOW, encoding=encoding)
    assert isinstance(rec.body, OfferBody)
    assert rec.name.to_text() == "gz-pool.ctyun" and rec.serial == 3 and rec.record_type == "offer"
    assert rec.signer == ex.provider_key().kid
    assert rec.header.ttl == 300
    assert rec.encode(encoding) == env.encode(encoding)
    assert len(env.digest()) == 43


def test_tampered_byte_refused() -> None:
    """REQ-SIG-001: any change to the signed content breaks the signature."""
    value = _offer().to_value()
    value["body"]["availability"]["units_free"] = 4999
    with pytest.raises(SignatureInvalidError):
        open_record(value, _keys(), now=NOW)
    value = _offer().to_value()
    value["header"]["exp"] += 1
    with pytest.raises(SignatureInvalidError):
        open_record(value, _keys(), now=NOW)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_single_byte_flip_is_refused(pos: int, flip: int) -> None:
    """Flipping any byte of a signed record gives a typed error, never a valid record."""
    data = bytearray(_offer().encode("msgpack"))
    data[pos % len(data)] ^= flip
    with pytest.raises(CidError):
        open_record(bytes(data), _keys(), now=NOW, encoding="msgpack")


def test_wrong_typ_refused() -> None:
    """REQ-SIG-003: a signature made for one typ never verifies as another."""
    env = _offer()
    with pytest.raises(SchemaError):
        env.verify(_keys(), typ="cid.record.zone", now=NOW)
    value = env.to_value()
    value["header"]["typ"] = "cid.record.zone"
    with pytest.raises(SignatureInvalidError):
        open_record(value, _keys(), now=NOW)


def test_unknown_key() -> None:
    with pytest.raises(KeyUnknownError):
        open_record(_offer().to_value(), {}, now=NOW)


@pytest.mark.parametrize(
    ("now", "error"),
    [
        (ex.EPOCH + 3600, ExpiredError),
        (ex.EPOCH + 99999, ExpiredError),
        (ex.EPOCH - 301, NotYetValidError),
    ],
)
def test_validity_window(now: int, error: type[CidError]) -> None:
    """REQ-SIG-031: nbf - skew <= now < exp."""
    with pytest.raises(error):
        open_record(_offer().to_value(), _keys(), now=now)
    open_record(_offer().to_value(), _keys(), now=ex.EPOCH - 299)  # inside the skew


def test_serial_rollback() -> None:
    """REQ-SIG-032: a serial not above the last one seen is refused."""
    open_record(_offer(5).to_value(), _keys(), now=NOW, last_serial=4)
    for last in (5, 6):
        with pytest.raises(SerialRollbackError):
            open_record(_offer(5).to_value(), _keys(), now=NOW, last_serial=last)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v.pop("sigs"),
        lambda v: v.update(sigs=[]),
        lambda v: v.update(extra=1),
        lambda v: v.update(header=[]),
        lambda v: v.update(body="x"),
        lambda v: v["header"].update(sub="GZ-POOL.ctyun"),
        lambda v: v["header"].update(sub="bad..name"),
        lambda v: v["header"].update(alg="rsa"),
        lambda v: v["header"].update(serial=0),
        lambda v: v["header"].update(exp=v["header"]["nbf"]),
        lambda v: v["header"].update(exp=v["header"]["nbf"] + 401 * 86400),
        lambda v: v["header"].update(aud="Ctyun"),
        lambda v: v["header"].update(unknown=1),
        lambda v: v["sigs"].append(dict(v["sigs"][0])),
        lambda v: v["sigs"][0].update(sig="short"),
    ],
)
def test_malformed_envelopes(mutate) -> None:  # type: ignore[no-untyped-def]
    """REQ-SIG-020/022/033: malformed envelopes are typed errors naming the field."""
    value = copy.deepcopy(_offer().to_value())
    mutate(value)
    with pytest.raises(CidError) as info:
        open_record(value, _keys(), now=NOW)
    assert info.value.code in (1000, 1001, 1002, 1003, 2007)


def test_open_record_needs_encoding_for_bytes() -> None:
    with pytest.raises(DecodeError):
        open_record(b"{}", _keys(), now=NOW)
    with pytest.raises(SchemaError):
        Envelope.from_value([])


def test_co_signed_envelope() -> None:
    """REQ-SIG-034: every signature must be by an authorised key; required parties must sign."""
    a, b = ex.provider_key(), ex.second_provider_key()
    env = seal(
        {"x": "1"},
        typ="cid.neg.agreement",
        sub="ctyun",
        serial=1,
        key=a,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 60,
        aud="ctyunx",
        nonce="n" * 22,
    )
    keys = {a.kid: a.public_key, b.kid: b.public_key}
    with pytest.raises(SignatureInvalidError):
        env.verify(keys, typ="cid.neg.agreement", now=NOW - 30, require=[a.kid, b.kid])
    both = env.add_signature(b)
    assert both.add_signature(b) is both
    both.verify(keys, typ={"cid.neg.agreement"}, now=NOW - 30, require=[a.kid, b.kid])
    again = Envelope.decode(both.encode("json"), "json")
    again.verify(keys, typ="cid.neg.agreement", now=NOW - 30, require=[a.kid, b.kid])
    with pytest.raises(KeyUnknownError):
        both.verify({a.kid: a.public_key}, typ="cid.neg.agreement", now=NOW - 30)


def test_seal_rejects_non_map_body_and_non_record_model() -> None:
    with pytest.raises(SchemaError):
        seal([], typ="cid.x", sub="a", serial=1, key=ex.provider_key(), nbf=0, exp=10)  # type: ignore[arg-type]
    from cid.record import Software

    with pytest.raises(SchemaError):
        sign_record(
            Software(name="cuda", version="12"),
            name="a",
            serial=1,
            key=ex.provider_key(),
            nbf=0,
            exp=10,
        )


def test_non_record_typ_refused_by_open_record() -> None:
    env = seal(
        {"x": "1"},
        typ="cid.neg.quote",
        sub="ctyun",
        serial=1,
        key=ex.provider_key(),
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 600,
    )
    with pytest.raises(SchemaError):
        open_record(env.to_value(), _keys(), now=NOW)
    from cid.envelope import parse_record_body

    with pytest.raises(SchemaError):
        parse_record_body(env)


def test_record_with_two_signatures_refused() -> None:
    """REQ-SIG-035: a record carries exactly one signature."""
    env = _offer().add_signature(ex.second_provider_key())
    keys = _keys() | {ex.second_provider_key().kid: ex.second_provider_key().public_key}
    with pytest.raises(SchemaError):
        open_record(env.to_value(), keys, now=NOW)
