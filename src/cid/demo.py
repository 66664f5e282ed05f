"""``make demo``: a walk-through of cid's foundation.

1. the registry operator's root key (the trust anchor) and a fresh provider key;
2. the root delegates the namespace ``ctyun`` to the provider;
3. the provider signs its zone record and two offers (Tianjin, Guizhou);
4. each record is encoded in canonical JSON and msgpack and verified back
   from bytes against the trust anchor;
5. a tampered record, a hijack attempt and a rolled-back serial are refused.

Later issues extend this to the full query -> negotiate -> invoke loop.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from . import examples as ex
from .envelope import Envelope, SignedRecord, sign_record
from .errors import CidError
from .identifier import Identifier
from .signing import SigningKey
from .trust import TrustState

__all__ = ["main"]


def _say(step: str, text: str) -> None:
    print(f"[{step}] {text}")


def _refused(what: str, attempt: Callable[[], Any]) -> str:
    try:
        attempt()
    except CidError as e:
        line = f"    refused: {what:<44} -> {e.name} ({e.code}): {e.message}"
        print(line)
        return e.name
    raise SystemExit(f"demo failure: {what} was accepted")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cid.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--now", type=int, default=None, help="fixed clock (seconds since epoch)")
    args = parser.parse_args(argv)
    now = args.now if args.now is not None else int(time.time())

    print("cid demo: identifiers, signed records, canonical codecs\n")
    root = ex.root_key()
    provider = SigningKey.generate()
    _say("keys", f"trust anchor (registry root)  kid={root.kid}")
    _say("keys", f"new provider key              kid={provider.kid}")

    trust = TrustState([root.public_key])
    namespace = Identifier.parse("CTYUN")
    _say("ident", f"'CTYUN' parses to the canonical identifier {namespace} ({namespace.to_uri()})")
    tianjin_name = Identifier.parse("tj-general.天津.ctyun")
    _say(
        "ident",
        f"{tianjin_name} is within {namespace}: {tianjin_name.is_within(namespace)}; "
        f"A-label form {tianjin_name.to_ascii()}",
    )
    prefix = Identifier.parse("pool.ctyunx")
    _say(
        "ident",
        f"{prefix} is within {namespace}: {prefix.is_within(namespace)} "
        "(label-wise, not string prefix)",
    )

    window = {"nbf": now - 60, "exp": now + 86_400}
    offer_window = {"nbf": now - 60, "exp": now + 3_600}
    delegation = sign_record(ex.delegation(provider), name=namespace, serial=1, key=root, **window)
    trust.add(delegation.envelope, now=now)
    _say("trust", f"root delegated '{namespace}' to kid={provider.kid}")

    records: list[SignedRecord[Any]] = [
        sign_record(
            ex.zone(provider, "天翼云 Example Compute"),
            name=namespace,
            serial=1,
            key=provider,
            ttl=3600,
            **window,
        ),
        sign_record(
            ex.tianjin_offer(), name=tianjin_name, serial=1, key=provider, ttl=300, **offer_window
        ),
        sign_record(
            ex.guizhou_offer(),
            name="gz-general.ctyun",
            serial=1,
            key=provider,
            ttl=300,
            **offer_window,
        ),
    ]
    print()
    for rec in records:
        as_json = rec.encode("json")
        as_msgpack = rec.encode("msgpack")
        _say(
            "sign",
            f"{rec.record_type:<5} {rec.name}  serial={rec.serial}  "
            f"json={len(as_json)} B  msgpack={len(as_msgpack)} B  "
            f"digest={rec.envelope.digest()[:16]}…",
        )
        for encoding, data in (("json", as_json), ("msgpack", as_msgpack)):
            verified = trust.verify(Envelope.decode(data, encoding), now=now)  # type: ignore[arg-type]
            assert verified.body == rec.body
        _say(
            "verify", "  decoded from JSON and from msgpack, signature and namespace chain verified"
        )
        if rec.record_type == "offer":
            body = rec.body
            price = ", ".join(
                f"{i.amount} {body.price.currency}/{i.resource}/{i.per}" for i in body.price.items
            )
            _say(
                "offer",
                f"  {body.title}: {body.unit.vcpu} vCPU {body.unit.memory_mib // 1024} GiB, "
                f"{body.location.city} ({body.location.region}), "
                f"renewable {body.energy.renewable_share}, "
                f"free {body.availability.units_free}/{body.availability.units_total}; {price}",
            )

    print()
    _say("attack", "tampering, hijacking and rollback:")
    guizhou = records[2]
    tampered = guizhou.envelope.to_value()
    tampered["body"]["price"]["items"][0]["amount"] = "0.5"
    _refused(
        "price lowered after signing", lambda: trust.verify(Envelope.from_value(tampered), now=now)
    )
    flipped = bytearray(guizhou.encode("msgpack"))
    flipped[len(flipped) // 2] ^= 0x01
    _refused(
        "one bit flipped in the msgpack bytes",
        lambda: trust.verify(Envelope.decode(bytes(flipped), "msgpack"), now=now),
    )
    mallory = SigningKey.generate()
    forged = sign_record(
        ex.guizhou_offer(), name="gz-general.ctyun", serial=2, key=mallory, **window
    )
    _refused("offer signed by an unknown key", lambda: trust.verify(forged.envelope, now=now))
    other = ex.second_provider_key()
    trust.add(
        sign_record(ex.delegation(other), name="ctyunx", serial=1, key=root, **window).envelope,
        now=now,
    )
    hijack = sign_record(ex.guizhou_offer(), name="pool.ctyun", serial=1, key=other, **window)
    _refused("ctyunx's key signing under ctyun", lambda: trust.verify(hijack.envelope, now=now))
    _refused(
        "serial 1 again after serial 1 (rollback)",
        lambda: trust.verify(guizhou.envelope, now=now, last_serial=guizhou.serial),
    )
    _refused(
        "record used after its expiry", lambda: trust.verify(guizhou.envelope, now=now + 3_600)
    )
    print("\ndemo complete: every valid record verified, every attack refused with a typed error")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
