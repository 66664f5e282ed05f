"""The ``cid`` command line paths that ``test_cli`` leaves out, pinned before a refactor.

Offline signing (``--out``) of every authority record and of offers, the
requester commands' help and usage errors, write and input errors, and
``refresh --out`` against a real registry: the messages, JSON values and exit
statuses here are the CLI's contract, so a refactor of :mod:`cid.cli` must keep
them to the letter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cid import examples as ex
from cid.envelope import Envelope

from .test_cli import Registry, _offer_file, _provider, cid, registry, run

__all__ = ["cid", "registry"]  # the fixtures, shared with test_cli


def _key(capsys: pytest.CaptureFixture[str], tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.key"
    assert run(capsys, "keygen", path).code == 0
    return path


def _signing_argv(command: str, capsys: pytest.CaptureFixture[str], tmp: Path) -> list[str]:
    """The arguments of ``command`` (after NAME and --key) that make a valid record."""
    other = str(_key(capsys, tmp, "other"))
    return {
        "delegate": ["--to", other, "--registry-url", "https://elsewhere.example"],
        "rotate": ["--new", other, "--revoke", other],
        "zone": ["--display-name", "Offline Ltd", "--service-key", other, "--org", "O"],
        "delete": ["--type", "zone"],
    }[command]


# command, record type, what the message calls it, validity (s) after nbf = now - 60
SIGNED = [
    ("delegate", "cid.record.delegation", "delegation", 365 * 86_400),
    ("rotate", "cid.record.keyrotation", "key rotation", 365 * 86_400),
    ("zone", "cid.record.zone", "zone", 90 * 86_400),
    ("delete", "cid.record.tombstone", "tombstone", 7 * 86_400),
]


@pytest.mark.parametrize(("command", "typ", "what", "validity"), SIGNED)
def test_offline_signing_with_out(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: str,
    typ: str,
    what: str,
    validity: int,
) -> None:
    key = _key(capsys, tmp_path, "signer")
    extra = _signing_argv(command, capsys, tmp_path)
    target = tmp_path / "rec.json"
    # no registry is contacted with --out (the default one would be unreachable)
    argv = [command, "offline", "--key", str(key), "--serial", "7", "--out", str(target), *extra]
    r = run(capsys, *argv)
    assert r.code == 0, r.err
    env = Envelope.from_value(json.loads(target.read_text(encoding="utf-8")))
    assert env.typ == typ and env.header.serial == 7 and env.header.sub.to_text() == "offline"
    assert env.header.exp - env.header.nbf == validity + 60
    assert r.out == (f"wrote {what} of offline (serial 7, digest {env.digest()}) to {target}\n")
    assert r.err == ""
    r = run(capsys, "--json", *argv)
    assert r.code == 0
    again = Envelope.from_value(json.loads(target.read_text(encoding="utf-8")))
    assert r.json() == {
        "out": str(target),
        "name": "offline",
        "typ": typ,
        "serial": 7,
        "digest": again.digest(),
    }
    # --out -: the envelope itself on stdout, nothing else
    r = run(capsys, *argv[: -2 - len(extra)], "--out", "-", *extra)
    assert r.code == 0
    assert Envelope.from_value(json.loads(r.out)).typ == typ


def test_register_offline_and_ndjson_out(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key = _key(capsys, tmp_path, "signer")
    src = tmp_path / "two.json"
    src.write_text(
        json.dumps(
            [
                {"name": "a.off", "offer": ex.guizhou_offer().to_value()},
                {"name": "b.off", "offer": ex.tianjin_offer().to_value(), "serial": 42},
            ],
            ensure_ascii=False,
        )
    )
    out = tmp_path / "signed.ndjson"
    argv = ["register", str(src), "--key", str(key), "--serial", "9", "--ttl", "600"]
    r = run(capsys, *argv, "--out", str(out))
    assert r.code == 0, r.err
    assert r.out == f"wrote 2 signed offer(s) to {out}\n"
    envs = [Envelope.from_value(json.loads(line)) for line in out.read_text().splitlines()]
    assert [(e.header.sub.to_text(), e.header.serial) for e in envs] == [
        ("a.off", 9),
        ("b.off", 42),
    ]
    assert all(e.header.exp - e.header.nbf == 660 for e in envs)
    r = run(capsys, "--json", *argv, "--out", str(out))
    assert r.json() == {"out": str(out), "records": 2}
    r = run(capsys, *argv, "--out", "-")
    assert r.code == 0 and len(json.loads(r.out)) == 2
    # an empty file, and an item that is not an offer item
    src.write_text("[]")
    r = run(capsys, *argv)
    assert r.code == 1 and r.err == f"error SCHEMA_VIOLATION (1003): {src} holds no offers\n"
    src.write_text('[{"name": "a.off", "offer": {}, "colour": 1}]')
    r = run(capsys, *argv)
    assert r.code == 1
    assert r.err == "error SCHEMA_VIOLATION (1003): item 0: unknown member 'colour'\n"


def test_write_and_input_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key = _key(capsys, tmp_path, "signer")
    target = tmp_path / "no" / "such" / "dir.json"
    r = run(capsys, "delete", "x", "--key", key, "--serial", "3", "--out", target)
    assert r.code == 1
    assert r.err == f"error MALFORMED (1000): cannot write {target}: No such file or directory\n"
    r = run(capsys, "--json", "delete", "x", "--key", key, "--serial", "3", "--out", target)
    assert r.code == 1 and r.json()["error"]["name"] == "MALFORMED"
    # zone: a contact needs an organisation (a usage error)
    r = run(capsys, "zone", "z", "--key", key, "--display-name", "Z", "--service-key", key,
            "--email", "a@b.example", "--out", tmp_path / "z.json")  # fmt: skip
    assert r.code == 2 and r.out == ""
    assert r.err.startswith("usage: cid ")
    assert r.err.endswith("cid zone: error: --email and --contact-url need --org\n")
    # submit: the envelope's place in its file, and an empty input
    bad = tmp_path / "bad.json"
    bad.write_text('[{"header": {}}]')
    r = run(capsys, "submit", bad)
    assert r.code == 1 and r.err.startswith("error ") and f"{bad} item 0: " in r.err
    bad.write_text("[]")
    r = run(capsys, "submit", bad)
    assert r.code == 1 and r.err == "error SCHEMA_VIOLATION (1003): no envelopes to submit\n"


@pytest.mark.parametrize("command", ["negotiate", "invoke", "receipt"])
def test_help_of_requester_subcommands(capsys: pytest.CaptureFixture[str], command: str) -> None:
    r = run(capsys, command, "--help")
    assert r.code == 0 and r.out.startswith(f"usage: cid {command}")
    assert "--registry URL" in r.out and "--json" in r.out and "--timeout S" in r.out


def test_requester_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CID_ROOT_KEYS", raising=False)
    key = _key(capsys, tmp_path, "me")
    r = run(capsys, "negotiate", "gz.x", "--key", key, "--duration", "1h", "--max-price", "1CNY")
    assert r.code == 2
    assert r.err.endswith(
        "cid negotiate: error: give the trust anchor: --root-key FILE (or CID_ROOT_KEYS)\n"
    )
    r = run(capsys, "negotiate", "gz.x", "--key", key, "--duration", "1 fortnight",
            "--max-price", "1CNY")  # fmt: skip
    assert r.code == 2 and "unknown duration unit 'fortnight'" in r.err
    agreement = tmp_path / "a.json"
    r = run(capsys, "invoke", agreement, "--key", key)
    assert r.code == 2
    assert r.err.endswith(
        "cid invoke: error: give the command after --, e.g. cid invoke a.json --key k -- echo hi\n"
    )
    r = run(capsys, "invoke", agreement, "--key", key, "--env", "NOEQUALS", "--", "true")
    assert r.code == 2 and r.err.endswith("cid invoke: error: --env 'NOEQUALS' is not NAME=VALUE\n")
    r = run(capsys, "invoke", agreement, "--key", key, "--", "true")
    assert r.code == 1 and r.err.startswith("error MALFORMED (1000): cannot read agreement ")


# --- against the registry ---------------------------------------------------------------------


def test_refresh_out_and_resubmit(cid: Any, registry: Registry, tmp_path: Path) -> None:
    key = _provider(cid, registry, tmp_path, "refout")
    assert cid("register", _offer_file(tmp_path / "o.json", "a.refout"), "--key", key).code == 0
    out = tmp_path / "refresh.json"
    r = cid("refresh", "a.refout", "--key", key, "--units-free", "3", "--out", out, "--json")
    assert r.code == 0, r.err
    env = Envelope.from_value(json.loads(out.read_text(encoding="utf-8")))
    assert env.typ == "cid.record.refresh" and env.body_value["units_free"] == 3
    assert r.json() == {
        "out": str(out),
        "name": "a.refout",
        "typ": "cid.record.refresh",
        "serial": env.header.serial,
        "digest": env.digest(),
    }
    r = cid("submit", out)
    assert r.code == 0, r.err
    assert r.out.splitlines()[-1] == "accepted 1 of 1 (1 new, 0 unchanged)"
    r = cid("submit", out, "--json")  # the very same envelope again: unchanged
    assert r.code == 0
    assert r.json()["results"][0]["ok"]["name"] == "a.refout"
    assert "rseq" not in r.json()["results"][0]["ok"]
    # delete: the default serial exceeds the one held
    r = cid("delete", "a.refout", "--key", key, "--json")
    assert r.code == 0, r.err
    assert r.json()["op"] == "delete" and r.json()["serial"] > env.header.serial
    r = cid("refresh", "a.refout", "--key", key, "--units-free", "1")
    assert r.code == 1 and r.err.startswith("error NOT_FOUND (3001)")
