"""The ``cid`` command line against a real registry process on loopback (issue 3).

The registry runs as ``cid-registry serve`` in a subprocess (SQLite store, the
system clock, since the CLI signs with the system clock too); the CLI runs
in-process through :func:`cid.cli.main`, and as ``python -m cid.cli`` where the
process boundary matters (exit status, no traceback, ``--follow``).
Each test works in its own top-level namespace, so they share one registry.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cid import cli
from cid import examples as ex
from cid.client import RegistryClient
from cid.errors import NotFoundError
from cid.query import Query
from cid.signing import SigningKey

from .registry.harness import Operator, RegistryProcess, start_process

COMMANDS = [
    "keygen", "pubkey", "delegate", "rotate", "zone", "register", "submit", "refresh",
    "delete", "resolve", "list", "search", "snapshot", "feed", "registry",
]  # fmt: skip


@dataclass
class Registry:
    url: str
    operator: Operator
    root_key: Path  # the operator's root key file (signs top-level delegations)
    root_pub: Path
    service_pub: Path
    tmp: Path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    tmp = tmp_path_factory.mktemp("cli-registry")
    operator = Operator()
    proc: RegistryProcess = start_process(tmp, operator, str(tmp / "registry.db"))
    root_key = tmp / "root.key"
    root_key.write_text(json.dumps(operator.root.to_file_value()))
    root_pub = tmp / "root.pub.json"
    root_pub.write_text(json.dumps(operator.root.public_key.to_value()))
    service_pub = tmp / "service.pub.json"
    service_pub.write_text(json.dumps(operator.service.public_key.to_value()))
    try:
        yield Registry(proc.url, operator, root_key, root_pub, service_pub, tmp)
    finally:
        proc.stop()


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> Run:
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return Run(code, captured.out, captured.err)


@pytest.fixture
def cid(capsys: pytest.CaptureFixture[str], registry: Registry) -> Any:
    """``cid(*args)``: the CLI against the test registry."""

    def call(*argv: str | Path) -> Run:
        return run(capsys, "--registry", registry.url, *argv)

    return call


def _provider(cid: Any, registry: Registry, tmp: Path, namespace: str) -> Path:
    """A key file for ``namespace``, delegated by the operator through the CLI."""
    key = tmp / f"{namespace}.key"
    assert cid("keygen", key).code == 0
    r = cid("delegate", namespace, "--key", registry.root_key, "--to", key, "--json")
    assert r.code == 0, r.err
    assert r.json()["type"] == "delegation" and r.json()["rseq"] >= 1
    return key


def _offer_file(path: Path, name: str, body: Any = None, **extra: Any) -> Path:
    offer = (body or ex.guizhou_offer()).to_value()
    path.write_text(json.dumps({"name": name, "offer": offer, **extra}, ensure_ascii=False))
    return path


# --- no registry needed -------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_subcommand(capsys: pytest.CaptureFixture[str], command: str) -> None:
    r = run(capsys, command, "--help")
    assert r.code == 0
    assert f"usage: cid {command}" in r.out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "--help").code == 0
    assert run(capsys).code == 2
    assert run(capsys, "frobnicate").code == 2
    assert run(capsys, "registry").code == 2  # `cid registry` needs serve or check
    r = run(capsys, "delegate", "ctyun", "--key", "k")  # --to missing
    assert r.code == 2 and "--to" in r.err
    assert run(capsys, "register", "f.json", "--key", "k", "--ttl", "0").code == 2
    r = run(capsys, "search")  # no query at all
    assert r.code == 2 and "--query-json" in r.err
    r = run(capsys, "search", "--query-json", "{}", "--limit", "5000")
    assert r.code == 2


def test_keygen_and_pubkey(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    r = run(capsys, "keygen", key)
    assert r.code == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    loaded = SigningKey.from_file_value(json.loads(key.read_text()))
    assert loaded.kid in r.out and loaded.public_key.pub in r.out
    # a key file is never overwritten by accident
    r = run(capsys, "keygen", key)
    assert r.code == 1 and r.err.startswith("error MALFORMED (1000):") and "--force" in r.err
    r = run(capsys, "keygen", key, "--force", "--json")
    assert r.code == 0
    value = r.json()
    assert value["kid"] != loaded.kid and value["alg"] == "ed25519"
    pub = run(capsys, "pubkey", key)
    assert pub.code == 0
    assert pub.json() == {"alg": "ed25519", "pub": value["pub"], "kid": value["kid"]}
    # the public half is itself accepted wherever a public key is
    pub_file = tmp_path / "k.pub.json"
    pub_file.write_text(pub.out)
    assert run(capsys, "pubkey", pub_file).json()["kid"] == value["kid"]
    r = run(capsys, "pubkey", tmp_path / "missing.key")
    assert r.code == 1 and "error MALFORMED (1000): cannot read" in r.err and "no such" in r.err


def test_errors_exit_1_without_traceback(tmp_path: Path) -> None:
    """A real process: the typed error line on stderr, exit status 1, no traceback."""
    env = {**os.environ, "CID_REGISTRY_URL": "http://127.0.0.1:9"}  # nothing listens on 9
    proc = subprocess.run(
        [sys.executable, "-m", "cid.cli", "resolve", "gz.ctyun"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error UNAVAILABLE (6004): registry http://127.0.0.1:9")
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "cid.cli", "--json", "resolve", "not..a..name"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1 and "error IDENTIFIER_INVALID (1001)" in proc.stderr
    assert json.loads(proc.stdout)["error"]["name"] == "IDENTIFIER_INVALID"
    assert "Traceback" not in proc.stderr


# --- against the registry ---------------------------------------------------------------------


def test_provider_lifecycle(cid: Any, registry: Registry, tmp_path: Path) -> None:
    """delegate -> zone -> register -> resolve (verified) -> update -> refresh -> delete."""
    key = _provider(cid, registry, tmp_path, "lifecycle")
    service = tmp_path / "svc.key"
    assert cid("keygen", service).code == 0
    r = cid(
        "zone", "lifecycle", "--key", key, "--display-name", "Lifecycle Compute",
        "--service-key", service, "--negotiate", "https://lc.example/negotiate",
        "--org", "Lifecycle Ltd", "--email", "noc@lc.example",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert r.out.startswith("accepted put zone lifecycle serial")
    # register one offer (human output: a table of what was accepted)
    single = _offer_file(tmp_path / "one.json", "GZ.Lifecycle")
    r = cid("register", single, "--key", key, "--serial", "100")
    assert r.code == 0, r.err
    assert "gz.lifecycle" in r.out and "accepted 1 of 1 (1 new, 0 unchanged)" in r.out
    # resolve, verified from the trust anchor through the proof
    r = cid("resolve", "gz.lifecycle", "--root-key", registry.root_pub)
    assert r.code == 0, r.err
    assert "verified from the trust anchor" in r.out and "offer" in r.out
    assert "delegation lifecycle" in r.out
    r = cid("resolve", "gz.lifecycle", "--root-key", registry.root_pub, "--json")
    answer = r.json()
    assert answer["verified"] is True and answer["name"] == "gz.lifecycle"
    # a wrong trust anchor: the typed verification error, exit status 1
    stranger = tmp_path / "stranger.key"
    cid("keygen", stranger)
    r = cid("resolve", "gz.lifecycle", "--root-key", stranger)
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("error KEY_UNKNOWN (2002):")
    # update: a higher serial; an older one is refused as a rollback
    assert cid("register", single, "--key", key, "--serial", "101").code == 0
    r = cid("register", single, "--key", key, "--serial", "99")
    assert r.code == 1 and "error SERIAL_ROLLBACK (2006)" in r.err and "gz.lifecycle: " in r.err
    # refresh: resolves the offer for its digest and continues its serials
    r = cid("refresh", "gz.lifecycle", "--key", key, "--units-free", "17", "--json")
    assert r.code == 0, r.err
    accepted = r.json()
    assert accepted["op"] == "refresh" and accepted["serial"] > 101
    r = cid("resolve", "gz.lifecycle", "--root-key", registry.root_pub, "--json")
    typs = sorted(rec["header"]["typ"] for rec in r.json()["records"])
    assert typs == ["cid.record.offer", "cid.record.refresh"]
    refresh = next(x for x in r.json()["records"] if x["header"]["typ"] == "cid.record.refresh")
    assert refresh["body"]["units_free"] == 17
    assert refresh["header"]["exp"] - refresh["header"]["nbf"] == 3600 + 60
    # more than the pool holds is refused by the registry
    r = cid("refresh", "gz.lifecycle", "--key", key, "--units-free", "999999")
    assert r.code == 1 and "error SCHEMA_VIOLATION (1003)" in r.err and "[body.units_free]" in r.err
    # someone else's key cannot touch the namespace
    r = cid("delete", "gz.lifecycle", "--key", stranger)
    assert r.code == 1 and "error KEY_UNKNOWN (2002)" in r.err
    # delete with a signed tombstone
    r = cid("delete", "gz.lifecycle", "--key", key)
    assert r.code == 0, r.err
    assert r.out.startswith("accepted delete offer gz.lifecycle")
    r = cid("resolve", "gz.lifecycle")
    assert r.code == 1 and r.err.startswith("error NOT_FOUND (3001)")
    # the zone is still there; list shows it
    r = cid("list", "lifecycle", "--json")
    assert [(i["name"], i["type"]) for i in r.json()["items"]] == [
        ("lifecycle", "delegation"),
        ("lifecycle", "zone"),
    ]


def test_bulk_ndjson_import_with_progress(cid: Any, registry: Registry, tmp_path: Path) -> None:
    key = _provider(cid, registry, tmp_path, "bulk")
    n = 300
    path = tmp_path / "offers.ndjson"
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            body = ex.guizhou_offer(units_free=i + 1)
            f.write(json.dumps({"name": f"pool-{i:03d}.bulk", "offer": body.to_value()}) + "\n")
    r = cid("register", path, "--key", key, "--chunk", "50", "--concurrency", "3")
    assert r.code == 0, r.err
    assert f"accepted {n} of {n} ({n} new, 0 unchanged)" in r.out
    last = r.err.strip().splitlines()[-1]
    assert last.startswith(f"register: {n}/{n} (100%)") and "offers/s" in last
    # an identical re-run is idempotent; --json reports every item
    r = cid("--json", "register", path, "--key", key, "--quiet", "--serial", "1")
    assert r.code == 1  # serial 1 is below the stored serial: every item refused
    report = r.json()
    assert report["failed"] == n and report["results"][0]["error"]["name"] == "SERIAL_ROLLBACK"
    assert r.err.count("error SERIAL_ROLLBACK") == 20 and f"and {n - 20} more" in r.err
    # list --all follows the cursor across pages
    r = cid("list", "bulk", "--all", "--limit", "64", "--json")
    assert r.code == 0
    names = [i["name"] for i in r.json()["items"] if i["type"] == "offer"]
    assert names == [f"pool-{i:03d}.bulk" for i in range(n)]
    assert "next_cursor" not in r.json()
    r = cid("list", "bulk", "--limit", "10")
    assert r.code == 0 and "more: --cursor" in r.out

    # every offer resolves
    async def resolve_all() -> list[int]:
        async with RegistryClient(registry.url) as client:
            answers = await asyncio.gather(*(client.resolve(name) for name in names))
        return [a["records"][0]["body"]["availability"]["units_free"] for a in answers]

    assert asyncio.run(resolve_all()) == list(range(1, n + 1))


def test_register_refuses_a_bad_file_before_sending(
    cid: Any, registry: Registry, tmp_path: Path
) -> None:
    key = _provider(cid, registry, tmp_path, "badfile")
    good = {"name": "a.badfile", "offer": ex.guizhou_offer().to_value()}
    bad_offer = ex.guizhou_offer().to_value()
    bad_offer["price"]["items"][0]["amount"] = 0.5  # a float, not a decimal string
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps([good, {"name": "b.badfile", "offer": bad_offer}]))
    r = cid("register", path, "--key", key)
    assert r.code == 1
    assert r.err.startswith("error SCHEMA_VIOLATION (1003): item 1: ")
    assert "[offer.price.items.0.amount]" in r.err
    assert cid("resolve", "a.badfile").code == 1  # nothing was sent
    path.write_text("{not json")
    r = cid("register", path, "--key", key)
    assert r.code == 1 and r.err.startswith("error MALFORMED (1000)")


def test_search_table_and_json(cid: Any, registry: Registry, tmp_path: Path) -> None:
    key = _provider(cid, registry, tmp_path, "searchns")
    path = tmp_path / "three.json"
    path.write_text(
        json.dumps(
            [
                {"name": "tj.searchns", "offer": ex.tianjin_offer().to_value()},
                {"name": "gz.searchns", "offer": ex.guizhou_offer().to_value()},
                {"name": "nm.searchns", "offer": ex.inner_mongolia_offer().to_value()},
            ],
            ensure_ascii=False,
        )
    )
    assert cid("register", path, "--key", key).code == 0
    query = {
        "within": "searchns",
        "class": "general",
        "demand": {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
        "duration_s": 3 * 2_628_000,
        "currency": "CNY",
        "order": ["cost"],
    }
    r = cid("search", "--query-json", json.dumps(query))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["RANK", "NAME", "TOTAL", "UNITS", "RTT", "SCORE"]
    assert lines[1].split()[:4] == ["1", "gz.searchns", "30", "CNY"]
    assert [ln.split()[1] for ln in lines[1:]] == ["gz.searchns", "nm.searchns", "tj.searchns"]
    qfile = tmp_path / "q.json"
    qfile.write_text(json.dumps(query))
    r = cid("search", "--query-json", f"@{qfile}", "--limit", "1", "--json")
    result = r.json()
    assert [m["name"] for m in result["results"]] == ["gz.searchns"]
    assert result["results"][0]["cost"]["total"] == "30"
    # a query that breaks a rule is the typed error
    r = cid("search", "--query-json", '{"order": ["cost"]}')
    assert r.code == 1 and "error SCHEMA_VIOLATION (1003)" in r.err and "[query.currency]" in r.err


def test_delegation_request_flow_and_rotation(cid: Any, registry: Registry, tmp_path: Path) -> None:
    """keygen + pubkey (the request) -> delegate --out (offline) -> submit; sub-delegation;
    rotate to a new signing key and revoke the old one."""
    anchor = tmp_path / "anchor.key"
    assert cid("keygen", anchor).code == 0
    request = tmp_path / "anchor.pub.json"
    request.write_text(cid("pubkey", anchor).out)
    out = tmp_path / "deleg.json"
    r = cid("delegate", "rot", "--key", registry.root_key, "--to", request, "--out", out)
    assert r.code == 0 and f"to {out}" in r.out
    assert cid("resolve", "rot").code == 1  # not submitted yet
    r = cid("submit", out)
    assert r.code == 0, r.err
    assert "accepted 1 of 1" in r.out
    # the namespace owner delegates a child namespace (--to as a bare public key)
    child = tmp_path / "child.key"
    cid("keygen", child)
    child_pub = cid("pubkey", child).json()["pub"]
    r = cid("delegate", "kid.rot", "--key", anchor, "--to", child_pub, "--days", "30")
    assert r.code == 0, r.err
    # rotation: a new signing key; the anchor key itself no longer signs records. Its key
    # id starts with "-" (base64url; one key in 64): "--revoke <kid>" below must still work
    signer = tmp_path / "signer.key"
    key = SigningKey.generate()
    while not key.public_key.kid.startswith("-"):
        key = SigningKey.generate()
    signer.write_text(json.dumps(key.to_file_value()), encoding="utf-8")
    r = cid("rotate", "rot", "--key", anchor, "--new", signer, "--json")
    assert r.code == 0, r.err and r.json()["type"] == "keyrotation"
    offer = _offer_file(tmp_path / "o.json", "x.rot")
    r = cid("register", offer, "--key", anchor)
    assert r.code == 1 and "error KEY_NOT_AUTHORISED (2003)" in r.err
    assert cid("register", offer, "--key", signer).code == 0
    r = cid("resolve", "x.rot", "--root-key", registry.root_pub)
    assert r.code == 0 and "keyrotation rot" in r.out
    # revoke the signer: its records stop verifying, new ones are refused
    signer2 = tmp_path / "signer2.key"
    cid("keygen", signer2)
    signer_kid = cid("pubkey", signer).json()["kid"]
    r = cid("rotate", "rot", "--key", anchor, "--new", signer2, "--revoke", signer_kid)
    assert r.code == 0, r.err
    r = cid("register", offer, "--key", signer, "--serial", str(2**40))
    assert r.code == 1 and "error KEY_REVOKED (2008)" in r.err


def test_key_values_may_begin_with_a_dash() -> None:
    """Key ids and public keys are base64url: a value of a key option may start with '-'."""
    attach = cli._attach_key_values
    assert attach(["rotate", "x", "--revoke", "-Ab", "--new", "-Cd"]) == [
        "rotate", "x", "--revoke=-Ab", "--new=-Cd",
    ]  # fmt: skip
    assert attach(["--to", "abc", "--json"]) == ["--to", "abc", "--json"]
    # after "--" everything is a task's command line, untouched
    assert attach(["invoke", "--", "--to", "-x"]) == ["invoke", "--", "--to", "-x"]
    assert attach(["--revoke"]) == ["--revoke"]


def test_snapshot_and_feed(
    cid: Any, registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _provider(cid, registry, tmp_path, "feedns")
    assert cid("register", _offer_file(tmp_path / "f.json", "a.feedns"), "--key", key).code == 0
    # snapshot: written as JSON, digest checked, head signature verified with the service key
    snap = tmp_path / "snap.json"
    r = cid("snapshot", "--out", snap, "--service-key", registry.service_pub, "--json")
    assert r.code == 0, r.err
    summary = r.json()
    assert summary["head_signature_verified"] is True
    assert "snapshot: " in r.err and "iB/s" in r.err
    value = json.loads(snap.read_text(encoding="utf-8"))
    assert len(value["records"]) == summary["records"] > 0
    subs = {rec["envelope"]["header"]["sub"] for rec in value["records"]}
    assert {"feedns", "a.feedns"} <= subs
    # a wrong service key: the typed error
    r = cid("snapshot", "--out", tmp_path / "x.json", "--service-key", key)
    assert r.code == 1 and "error KEY_UNKNOWN (2002)" in r.err
    # the whole feed from 0: NDJSON, the chain recomputed and checked
    r = cid("feed", "--since", "0", "--json", "--limit", "100")
    assert r.code == 0, r.err
    changes = [json.loads(line) for line in r.out.splitlines()]
    assert [c["rseq"] for c in changes] == list(range(1, len(changes) + 1))
    assert len(changes) >= summary["rseq"]
    assert "chain checked" in r.err
    head = changes[-1]["rseq"]
    r = cid("feed", "--since", str(head - 1))
    assert r.code == 0 and r.out.splitlines()[0].split() == ["RSEQ", "OP", "TYPE", "SERIAL", "NAME"]
    assert r.out.splitlines()[1].split()[0] == str(head)
    # --follow long-polls until a new change arrives (a real process, stopped by --max-changes)
    follower = subprocess.Popen(
        [
            sys.executable, "-X", "faulthandler", "-m", "cid.cli", "--registry", registry.url,
            "feed", "--since", str(head), "--follow", "--max-changes", "1", "--json", "--wait", "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert cid("register", _offer_file(tmp_path / "g.json", "b.feedns"), "--key", key).code == 0
        stdout, stderr = _communicate_or_dump(follower, timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, stderr
    (change,) = [json.loads(line) for line in stdout.splitlines()]
    assert change["name"] == "b.feedns" and change["op"] == "put" and change["type"] == "offer"
    # Ctrl-C ends --follow: exit status 130, no traceback (--wait 1: the registry's graceful
    # shutdown waits for a long poll whose client has gone)
    follower = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "cid.cli", "--registry", registry.url,
         "feed", "--since", str(change["rseq"]), "--follow", "--wait", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert follower.stderr is not None
        ready, _, _ = select.select([follower.stderr], [], [], 30)
        assert ready, "the follower never started following"
        assert "following from rseq" in follower.stderr.readline()
        follower.send_signal(signal.SIGINT)
        _, stderr = _communicate_or_dump(follower, timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 130 and "Traceback" not in stderr


def _communicate_or_dump(proc: subprocess.Popen[str], *, timeout: float) -> tuple[str, str]:
    """The process's (stdout, stderr) once it exits; if it hangs, a failure with its Python
    stacks (``-X faulthandler`` dumps every thread on SIGABRT), so a rare hang can be diagnosed."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, stderr = proc.communicate(timeout=10)
        pytest.fail(f"process did not exit within {timeout} s; its stacks:\n{stderr[-6000:]}")


def test_registry_url_from_environment(
    capsys: pytest.CaptureFixture[str], registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CID_REGISTRY_URL", registry.url)
    r = run(capsys, "list", "nobody-here", "--json")
    assert r.code == 0, r.err  # the default registry (127.0.0.1:8470) would be unreachable
    assert r.json() == {"items": []}


def test_textual_search_matches_json(cid: Any, registry: Registry, tmp_path: Path) -> None:
    """A textual query (spec 13) searches like its JSON form."""
    from cid import query_text

    key = _provider(cid, registry, tmp_path, "textns")
    assert cid("register", _offer_file(tmp_path / "t.json", "a.textns"), "--key", key).code == 0
    query = Query.model_validate({"within": "textns", "class": "general", "limit": 5})
    text = query_text.to_text(query)
    bad = cid("search", "class=quantum")
    assert bad.code == 1 and "QUERY_SYNTAX" in bad.err
    by_text = cid("search", text, "--json")
    assert by_text.code == 0, by_text.err
    by_json = cid("search", "--query-json", json.dumps(query.to_value()), "--json")
    assert by_text.json() == by_json.json()
    assert [m["name"] for m in by_text.json()["results"]] == ["a.textns"]


def test_registry_passthrough(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`cid registry ...` is `cid-registry ...`."""
    proc = subprocess.run(
        [sys.executable, "-m", "cid.cli", "registry", "check", "--store", str(tmp_path / "r.db")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["problems"] == []


def test_resolve_not_found_json(cid: Any) -> None:
    r = cid("--json", "resolve", "nothing.here")
    assert r.code == 1
    assert r.json()["error"]["name"] == "NOT_FOUND"
    assert r.err.startswith("error NOT_FOUND (3001): ")
    assert NotFoundError.code == 3001


@pytest.mark.parametrize(
    ("status", "expected"),
    [(503, "error UNAVAILABLE (6004)"), (429, "error RATE_LIMITED (6001)")],
)
def test_snapshot_from_a_proxy_error_is_typed_by_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, status: int, expected: str
) -> None:
    """A proxy's error page (no cid problem body) maps by status, as for every other command."""
    import http.server
    import threading

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>busy</html>"
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        r = run(capsys, "--registry", url, "snapshot", "--out", tmp_path / "s.json")
        assert r.code == 1 and expected in r.err, r.err
        assert not (tmp_path / "s.json").exists()
    finally:
        server.shutdown()
        server.server_close()
