"""Core benchmarks (issue 2): verification cost and codec rates, side by side in one run.

Prints, for a typical signed offer record:
* raw Ed25519 verify of its signing input (the floor),
* full verification from bytes (decode + canonicalise + verify; the trust-state
  lookup included), in msgpack and JSON, with and without parsing the body model,
  each as a ratio of the raw verify;
* encode/decode rates of canonical JSON vs msgpack for the offer.

Each figure is the median of several timed rounds (time.perf_counter, one process).
Run: ``make bench`` (or ``.venv/bin/python benchmarks/bench_core.py [--quick]``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cid import codec
from cid import examples as ex
from cid.envelope import Envelope, sign_record
from cid.trust import TrustState


def per_op_us(fn: Callable[[], object], *, number: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    args = parser.parse_args()
    number, rounds = (200, 3) if args.quick else (3000, 7)

    root, provider = ex.root_key(), ex.provider_key()
    trust = TrustState([root.public_key])
    now = ex.EPOCH + 60
    trust.add(
        sign_record(
            ex.delegation(provider),
            name="ctyun",
            serial=1,
            key=root,
            nbf=ex.EPOCH,
            exp=ex.EPOCH + 86_400,
        ).envelope,
        now=now,
    )
    rec = sign_record(
        ex.guizhou_offer(),
        name="gz-general.ctyun",
        serial=3,
        key=provider,
        nbf=ex.EPOCH,
        exp=ex.EPOCH + 86_400,
        ttl=300,
    )
    env = rec.envelope
    as_msgpack = env.encode("msgpack")
    as_json = env.encode("json")
    value = env.to_value()
    keys = trust.authorised_keys(env.header.sub)
    sig = env.sigs[0]
    signing_input = env.signing_input(sig.kid)
    raw_sig = sig.raw
    pub = keys[sig.kid]

    def raw_verify() -> None:
        pub.verify(raw_sig, signing_input)

    def verify_only(data: bytes, encoding: codec.Encoding) -> Callable[[], None]:
        def run() -> None:
            e = Envelope.decode(data, encoding)
            e.verify(trust.authorised_keys(e.header.sub), typ="cid.record.offer", now=now)

        return run

    def verify_and_parse(data: bytes, encoding: codec.Encoding) -> Callable[[], None]:
        def run() -> None:
            trust.verify(Envelope.decode(data, encoding), now=now)

        return run

    print(f"# cid core benchmark - {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"# {platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
        f" {platform.system()} {platform.release()}"
    )
    print(
        f"# offer record: msgpack {len(as_msgpack)} B, json {len(as_json)} B; "
        f"median of {rounds} rounds x {number}\n"
    )

    base = per_op_us(raw_verify, number=number, rounds=rounds)
    rows = [("raw Ed25519 verify (floor)", base)]
    for label, fn in (
        ("full verify, msgpack (decode+canonicalise+verify)", verify_only(as_msgpack, "msgpack")),
        ("full verify, json    (decode+canonicalise+verify)", verify_only(as_json, "json")),
        ("full verify + body model, msgpack", verify_and_parse(as_msgpack, "msgpack")),
        ("full verify + body model, json", verify_and_parse(as_json, "json")),
    ):
        rows.append((label, per_op_us(fn, number=number, rounds=rounds)))
    print(f"{'signature verification':<55} {'us/op':>9} {'ops/s':>9} {'x raw':>7}")
    for label, us in rows:
        print(f"{label:<55} {us:>9.1f} {1e6 / us:>9.0f} {us / base:>7.2f}")

    print(f"\n{'codec (typical offer envelope)':<55} {'us/op':>9} {'ops/s':>9} {'MB/s':>7}")
    for label, fn, size in (
        ("encode canonical json", lambda: codec.encode_json(value), len(as_json)),
        ("encode canonical msgpack", lambda: codec.encode_msgpack(value), len(as_msgpack)),
        (
            "decode json (limits + data-model checks)",
            lambda: codec.decode_json(as_json),
            len(as_json),
        ),
        (
            "decode msgpack (limits + data-model checks)",
            lambda: codec.decode_msgpack(as_msgpack),
            len(as_msgpack),
        ),
    ):
        us = per_op_us(fn, number=number, rounds=rounds)
        print(f"{label:<55} {us:>9.1f} {1e6 / us:>9.0f} {size / us:>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
