"""Keys, key ids, PAE and base64url ([REQ-SIG-001]..[REQ-SIG-010], [REQ-ENC-005])."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cid import examples as ex
from cid.errors import AlgorithmUnsupportedError, DecodeError, SignatureInvalidError
from cid.signing import PublicKey, SigningKey, b64url_decode, b64url_encode, key_id, pae, verify_raw

RFC8032_TEST1_PUB = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
RFC8032_TEST1_SIG_EMPTY = (
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_test1() -> None:
    """The fixed keys are the RFC 8032 section 7.1 keys: TEST 1 reproduces its signature."""
    key = ex.root_key()
    assert key.public_key.raw.hex() == RFC8032_TEST1_PUB
    assert key.sign(b"").hex() == RFC8032_TEST1_SIG_EMPTY
    verify_raw(key.public_key.raw, bytes.fromhex(RFC8032_TEST1_SIG_EMPTY), b"")


def test_key_id_derivation() -> None:
    """REQ-SIG-010: the kid is derived from the public key, 22 base64url characters."""
    key = ex.root_key()
    assert key.kid == key_id("ed25519", key.public_key.raw) == key.public_key.kid
    assert len(key.kid) == 22
    assert ex.provider_key().kid != key.kid


def test_pae_binds_type_and_key() -> None:
    """REQ-SIG-002/003: the signing input is length-prefixed and binds typ and kid."""
    assert pae("cid.record.offer", "kid", b"{}") == b"cid-sig-v1 16 cid.record.offer 3 kid 2 {}"
    assert pae("a", "b c", b"") != pae("a b", "c", b"")


def test_verify_failures() -> None:
    key = ex.provider_key()
    sig = key.sign(b"hello")
    key.public_key.verify(sig, b"hello")
    with pytest.raises(SignatureInvalidError):
        key.public_key.verify(sig, b"hellO")
    with pytest.raises(SignatureInvalidError):
        verify_raw(key.public_key.raw, sig[:10], b"hello")
    with pytest.raises(SignatureInvalidError):
        ex.root_key().public_key.verify(sig, b"hello")


def test_key_files_round_trip() -> None:
    key = SigningKey.generate()
    back = SigningKey.from_file_value(key.to_file_value())
    assert back.kid == key.kid and back.seed() == key.seed()
    bad = key.to_file_value() | {"pub": ex.root_key().public_key.pub}
    with pytest.raises(DecodeError):
        SigningKey.from_file_value(bad)
    with pytest.raises(DecodeError):
        SigningKey.from_file_value({"alg": "rsa"})
    with pytest.raises(DecodeError):
        SigningKey.from_seed(b"short")
    assert "kid=" in repr(key)


def test_public_key_model() -> None:
    pk = PublicKey.from_raw(bytes(32))
    assert pk.pub == "A" * 43
    with pytest.raises(AlgorithmUnsupportedError):
        PublicKey.from_raw(bytes(32), alg="rsa")
    with pytest.raises(ValueError):
        PublicKey(alg="ed25519", pub="AAAA")
    with pytest.raises(ValueError):
        PublicKey(alg="ed448", pub="A" * 43)  # type: ignore[arg-type]


@given(st.binary(max_size=80))
def test_b64url_round_trip(data: bytes) -> None:
    """REQ-ENC-005: base64url without padding, strict."""
    text = b64url_encode(data)
    assert "=" not in text
    assert b64url_decode(text) == data


@pytest.mark.parametrize("text", ["AA==", "AB", "A+/=", "A", "ü", "A*"])
def test_b64url_strict(text: str) -> None:
    with pytest.raises(DecodeError):
        b64url_decode(text)


def test_b64url_length() -> None:
    with pytest.raises(DecodeError):
        b64url_decode(b64url_encode(b"abc"), length=4)
    with pytest.raises(DecodeError):
        b64url_decode(5)  # type: ignore[arg-type]
