"""The published latency model, sans-IO: sealing and the replica's acceptance rules.

[REQ-REG-065] the envelope a registry serves; [REQ-RES-015] what a replica
accepts: a service key's signature, the validity window, no lower version and
no second body under one version. Every refusal leaves the held model in place.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cid import examples as ex
from cid.errors import (
    ExpiredError,
    HeadMismatchError,
    KeyUnknownError,
    SchemaError,
    SerialRollbackError,
    SignatureInvalidError,
)
from cid.latency import (
    LATENCY_MODEL_TYP,
    MODEL_LIFETIME_S,
    LatencyModel,
    ModelAcceptor,
    default_model,
    seal_model,
)
from cid.signing import SigningKey

NOW = ex.EPOCH
SERVICE = SigningKey.generate()
KEYS = {SERVICE.public_key.kid: SERVICE.public_key}


def model(version: int = 1, metro_us: int = 1000) -> LatencyModel:
    return LatencyModel.build(
        "test-model",
        circles=[("metro", metro_us, ["CN-BJ", "CN-TJ"])],
        rtt=[("CN-TJ", "CN-GZ", 30_000)],
        version=version,
    )


def sealed(m: LatencyModel, *, now: int = NOW, key: SigningKey = SERVICE) -> dict[str, Any]:
    return seal_model(m, key, now).to_value()


def test_sealed_envelope_is_as_specified() -> None:
    """REQ-REG-065: typ, root subject, serial = version, window of at most an hour, one sig."""
    env = seal_model(model(7), SERVICE, NOW)
    h = env.header
    assert (h.typ, h.sub.to_text(), h.serial) == (LATENCY_MODEL_TYP, ".", 7)
    assert h.iat == h.nbf == NOW and h.exp == NOW + MODEL_LIFETIME_S and h.ttl is None
    assert [s.kid for s in env.sigs] == [SERVICE.public_key.kid]
    assert env.body_value == model(7).to_value()
    with pytest.raises(ValueError, match="lifetime_s"):
        seal_model(model(), SERVICE, NOW, lifetime_s=MODEL_LIFETIME_S + 1)


def test_accepts_and_keeps_the_same_model_re_signed() -> None:
    """REQ-RES-015: a re-signed envelope of the held version is the same model."""
    acc = ModelAcceptor()
    first = acc.accept(sealed(model()), KEYS, now=NOW)
    assert first == model() and acc.model is first
    again = acc.accept(sealed(model(), now=NOW + 1800), KEYS, now=NOW + 1800)
    assert again is first
    newer = acc.accept(sealed(model(2, 900)), KEYS, now=NOW + 1)
    assert acc.model is newer and newer.version == 2


@pytest.mark.parametrize(
    ("attack", "error"),
    [
        ("tampered body", SignatureInvalidError),
        ("foreign key", KeyUnknownError),
        ("expired", ExpiredError),
        ("wrong typ", SchemaError),
        ("not at the root", SchemaError),
        ("serial is not the version", SchemaError),
        ("two signatures", SchemaError),
        ("lower version", SerialRollbackError),
        ("same version, other body", HeadMismatchError),
        ("body breaks the model", SchemaError),
    ],
)
def test_refusals_keep_the_held_model(attack: str, error: type[Exception]) -> None:
    """REQ-RES-015 / REQ-QRY-066: every refused model leaves the held one in place."""
    acc = ModelAcceptor()
    held = acc.accept(sealed(model(3)), KEYS, now=NOW)
    now = NOW
    value: dict[str, Any]
    if attack == "tampered body":
        value = sealed(model(3))
        value["body"]["circles"][0]["rtt_us"] = 1
    elif attack == "foreign key":
        value = sealed(model(4), key=SigningKey.generate())
    elif attack == "expired":
        value = sealed(model(4))
        now = NOW + MODEL_LIFETIME_S + 3600
    elif attack == "wrong typ":
        from cid.envelope import seal

        env = seal(model(4), typ="cid.feed.head", sub=".", serial=4, key=SERVICE, nbf=NOW,
                   exp=NOW + 60)  # fmt: skip
        value = env.to_value()
    elif attack == "not at the root":
        from cid.envelope import seal

        env = seal(model(4), typ=LATENCY_MODEL_TYP, sub="ctyun", serial=4, key=SERVICE,
                   nbf=NOW, exp=NOW + 60)  # fmt: skip
        value = env.to_value()
    elif attack == "serial is not the version":
        from cid.envelope import seal

        env = seal(model(4), typ=LATENCY_MODEL_TYP, sub=".", serial=5, key=SERVICE, nbf=NOW,
                   exp=NOW + 60)  # fmt: skip
        value = env.to_value()
    elif attack == "two signatures":
        env = seal_model(model(4), SERVICE, NOW)
        value = env.to_value()
        value["sigs"] = [*value["sigs"], copy.deepcopy(value["sigs"][0])]
    elif attack == "lower version":
        value = sealed(model(2))
    elif attack == "same version, other body":
        value = sealed(model(3, metro_us=1500))
    else:
        from cid.envelope import seal

        bad = model(4).to_value()
        bad["circles"].append(copy.deepcopy(bad["circles"][0]))  # two circles of one name
        env = seal(bad, typ=LATENCY_MODEL_TYP, sub=".", serial=4, key=SERVICE, nbf=NOW,
                   exp=NOW + 60)  # fmt: skip
        value = env.to_value()
    with pytest.raises(error):
        acc.accept(value, KEYS, now=now)
    assert acc.model is held


def test_default_model_round_trips_through_an_envelope() -> None:
    """The reference model travels whole: the replica ranks with an equal model."""
    acc = ModelAcceptor()
    got = acc.accept(sealed(default_model()), KEYS, now=NOW)
    assert got == default_model()
    assert got.region_rtt_us("CN-BJ", "CN-TJ") == default_model().region_rtt_us("CN-BJ", "CN-TJ")
