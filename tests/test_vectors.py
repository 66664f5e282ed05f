"""Run every language-neutral vector in spec/vectors/ through the library; check for drift."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cid import codec, schema
from cid.envelope import Envelope
from cid.errors import CidError
from cid.signing import PublicKey, SigningKey
from cid.trust import TrustState

SPEC = Path(__file__).resolve().parents[1] / "spec"
VECTORS = SPEC / "vectors"


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("cid_vectors_generate", VECTORS / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CODEC = _load("codec.json")
SIGS = _load("signatures.json")


def test_vectors_do_not_drift() -> None:
    """The checked-in vectors are exactly what the generator produces (run `make vectors`)."""
    gen = _generator()
    for name, value in gen.build().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == gen.render(value), name


def test_schemas_do_not_drift() -> None:
    """REQ-ENC-030: spec/schemas holds exactly the generated schemas (`make schemas`)."""
    generated = schema.all_schemas()
    on_disk = {
        p.name.removesuffix(".schema.json") for p in (SPEC / "schemas").glob("*.schema.json")
    }
    assert on_disk == set(generated)
    for stem, value in generated.items():
        jsonschema.Draft202012Validator.check_schema(value)
        text = (SPEC / "schemas" / f"{stem}.schema.json").read_text(encoding="utf-8")
        assert text == schema.render(value), stem


@pytest.mark.parametrize("case", CODEC["valid"], ids=lambda c: c["note"])
def test_codec_valid(case: dict[str, Any]) -> None:
    """REQ-ENC-003/004: canonical bytes of each value, and decoding them back."""
    value = case["value"]
    assert codec.encode_json(value).hex() == case["json_hex"]
    assert codec.encode_msgpack(value).hex() == case["msgpack_hex"]
    assert codec.decode(bytes.fromhex(case["json_hex"]), "json", require_canonical=True) == value
    assert (
        codec.decode(bytes.fromhex(case["msgpack_hex"]), "msgpack", require_canonical=True) == value
    )


@pytest.mark.parametrize("case", CODEC["invalid"], ids=lambda c: f"{c['encoding']}: {c['note']}")
def test_codec_invalid(case: dict[str, Any]) -> None:
    """REQ-ENC-010..013: each must be refused with the named error."""
    with pytest.raises(CidError) as info:
        codec.decode(bytes.fromhex(case["hex"]), case["encoding"])
    assert info.value.name == case["error"]


@pytest.mark.parametrize("case", CODEC["non_canonical"], ids=lambda c: c["note"])
def test_codec_non_canonical(case: dict[str, Any]) -> None:
    """REQ-ENC-014."""
    data = bytes.fromhex(case["hex"])
    codec.decode(data, case["encoding"])
    with pytest.raises(CidError) as info:
        codec.decode(data, case["encoding"], require_canonical=True)
    assert info.value.name == "NON_CANONICAL"


def _trust() -> TrustState:
    trust = TrustState(PublicKey.model_validate(k) for k in SIGS["trust"]["root_keys"])
    for entry in SIGS["trust"]["chain"]:
        trust.add(Envelope.from_value(entry["envelope"]), now=SIGS["now"])
    return trust


def test_keys_match_seeds() -> None:
    for entry in SIGS["keys"]:
        key = SigningKey.from_seed(bytes.fromhex(entry["seed_hex"]))
        assert key.public_key.pub == entry["pub"] and key.kid == entry["kid"]


@pytest.mark.parametrize("case", SIGS["valid"], ids=lambda c: c["note"])
def test_signed_records_valid(case: dict[str, Any]) -> None:
    """REQ-SIG-001/002/030: verify from JSON and msgpack; bytes and signing input match."""
    trust = _trust()
    for env in (
        Envelope.decode(case["json"].encode(), "json"),
        Envelope.decode(bytes.fromhex(case["msgpack_hex"]), "msgpack"),
        Envelope.from_value(case["envelope"]),
    ):
        rec = trust.verify(env, now=SIGS["now"])
        assert env.message().decode() == case["message"]
        assert env.signing_input(env.sigs[0].kid).hex() == case["signing_input_hex"]
        assert env.encode("json").decode() == case["json"]
        assert env.digest() == case["digest"]
        assert rec.body.to_value() == case["envelope"]["body"]
    name = "record-" + case["envelope"]["header"]["typ"].rsplit(".", 1)[1]
    jsonschema.validate(case["envelope"], schema.all_schemas()[name])


@pytest.mark.parametrize("case", SIGS["invalid"], ids=lambda c: c["note"])
def test_signed_records_invalid(case: dict[str, Any]) -> None:
    """REQ-SIG-030..035, REQ-SEC: each must be refused with the named error."""
    trust = _trust()
    with pytest.raises(CidError) as info:
        env = Envelope.from_value(case["envelope"])
        trust.verify(env, now=case.get("now", SIGS["now"]), last_serial=case.get("last_serial"))
    assert info.value.name == case["error"], info.value
