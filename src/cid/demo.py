"""``make demo``: the whole cid loop on one machine - find, negotiate, invoke, verify.

1. a registry (``cid-registry serve``, embedded SQLite) on a free loopback port;
2. the registry operator (the fixed root key of :mod:`cid.examples`) publishes
   the root zone and delegates three provider namespaces;
3. three reference providers (``cid-provider serve``) stand in for Tianjin,
   Guizhou and Inner Mongolia (``examples/providers/*.toml``: different prices,
   latency circles, renewable shares; each has an accelerator pool); each
   registers its zone record and offers and keeps availability fresh;
4. a scheduler follows the registry with a verified local catalogue and asks
   "1 vCPU + 2 GiB + 100 GiB storage for 3 months, cheapest first", then
   "the greenest accelerator pool within 10 ms of Tianjin";
5. a requester negotiates with the cheapest (demand → quote → accept →
   agreement signed by both), runs a small real computation under the
   agreement, follows its status live, fetches and hash-checks the result, and
   verifies the signed receipt offline;
6. attacks on the way (full run only): a tampered record, a replayed task, a
   task over its agreement's limits, an agreement taken to another provider,
   an altered receipt - each refused with its typed error.

Every subprocess is stopped on exit (also on Ctrl-C or SIGTERM); ``--keep``
leaves the registry and providers running for exploration until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import inspect
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Final

from . import examples as ex
from .catalogue import Catalogue
from .client import RegistryClient
from .envelope import Envelope, sign_record
from .errors import CidError
from .identifier import Identifier
from .invocation import TaskLimits, verify_receipt
from .latency import default_model
from .negotiation import Agreement, MaxPrice, verify_agreement
from .query import Query, ResourceDemand
from .record import DelegationBody, OfferBody, ZoneBody
from .requester import ProviderEndpoints, Requester
from .resolver import Resolver
from .signing import PublicKey, SigningKey

__all__ = ["main"]

MONTH_S: Final = 2_628_000
"""A month of 730 hours ([REQ-CAP-020])."""

PROVIDERS: Final = (
    ("tianjin", "tianjin.toml", "Tianjin"),
    ("guizhou", "guizhou.toml", "Guizhou"),
    ("innermongolia", "inner-mongolia.toml", "Inner Mongolia"),
)

# The small real computation: count the primes below 200,000 with a sieve, write the answer.
COMPUTATION: Final = (
    "import json, hashlib, os\n"
    "n = 200_000\n"
    "sieve = bytearray([1]) * n\n"
    "sieve[0:2] = b'\\x00\\x00'\n"
    "for i in range(2, int(n ** 0.5) + 1):\n"
    "    if sieve[i]:\n"
    "        sieve[i * i :: i] = bytearray(len(range(i * i, n, i)))\n"
    "primes = [i for i in range(n) if sieve[i]]\n"
    "answer = {'below': n, 'primes': len(primes), 'largest': primes[-1],\n"
    "          'digest': hashlib.sha256(str(primes).encode()).hexdigest()}\n"
    "os.makedirs('out', exist_ok=True)\n"
    "with open('out/result.json', 'w') as f:\n"
    "    json.dump(answer, f)\n"
    "print('primes below', n, '=', len(primes))\n"
)


def _say(step: str, text: str) -> None:
    print(f"[{step}] {text}", flush=True)


def _detail(text: str) -> None:
    print(f"    {text}", flush=True)


def _repo_examples() -> Path:
    return Path(__file__).resolve().parents[2] / "examples" / "providers"


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if the demo dies without cleaning up."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Processes:
    """The demo's subprocesses: each is stopped (SIGTERM, then SIGKILL) on exit."""

    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, cmd: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(cmd),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_pdeathsig if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            )
        self.procs.append((name, proc))
        return proc

    def stop_all(self, timeout_s: float = 8.0) -> None:
        """Providers first (they drain: units_free 0, tasks killed), then the registry."""
        providers = [p for name, p in self.procs if name != "registry"]
        registry = [p for name, p in self.procs if name == "registry"]
        for group in (providers, registry):
            for proc in group:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            for proc in group:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()


async def _wait_ready(
    proc: subprocess.Popen[bytes], ready: Path, log: Path, what: str, timeout_s: float = 30.0
) -> tuple[str, int]:
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{what} did not start:\n{tail}")
        await asyncio.sleep(0.02)
    host, port = ready.read_text().split()
    return host, int(port)


def _write_key(path: Path, key: SigningKey) -> Path:
    path.write_text(json.dumps(key.to_file_value()))
    path.chmod(0o600)
    return path


def _money(value: Decimal | str) -> str:
    d = Decimal(value)
    return f"{d.quantize(Decimal('0.01')) if d == d.quantize(Decimal('0.01')) else d}"


async def _refuse(what: str, attempt: Callable[[], object]) -> None:
    """Run an attack; it must fail with a typed error, which is shown."""
    try:
        result = attempt()
        if inspect.isawaitable(result):
            await result
    except CidError as e:
        _detail(f"refused: {what:<46} -> {e.name} ({e.code})")
        return
    raise RuntimeError(f"{what} was accepted")


@dataclass
class Demo:
    quick: bool
    keep: bool
    configs: Path
    work: Path
    procs: Processes = field(default_factory=Processes)
    registry: str = ""
    root: SigningKey = field(default_factory=ex.root_key)
    registry_service: SigningKey = field(default_factory=SigningKey.generate)
    providers: dict[str, str] = field(default_factory=dict)
    keys: dict[str, tuple[SigningKey, SigningKey]] = field(default_factory=dict)

    @property
    def root_pub_file(self) -> Path:
        return self.work / "root.pub.json"

    # -- 1. registry ---------------------------------------------------------------------------

    async def start_registry(self) -> None:
        self.root_pub_file.write_text(json.dumps([self.root.public_key.to_value()]))
        service_file = _write_key(self.work / "registry-service.key", self.registry_service)
        ready, log = self.work / "registry.ready", self.work / "registry.log"
        proc = self.procs.start(
            "registry",
            [
                sys.executable,
                "-m",
                "cid_registry.cli",
                "serve",
                "--store",
                str(self.work / "registry.sqlite3"),
                "--port",
                "0",
                "--root-keys",
                str(self.root_pub_file),
                "--service-key",
                str(service_file),
                "--ready-file",
                str(ready),
            ],
            log,
        )
        host, port = await _wait_ready(proc, ready, log, "the registry")
        self.registry = f"http://{host}:{port}"
        _say("registry", f"cid-registry serving at {self.registry} (SQLite in {self.work.name}/)")

    # -- 2. operator ----------------------------------------------------------------------------

    async def operate(self) -> None:
        now = int(time.time())
        _say(
            "operator",
            f"trust anchor: root key {self.root.kid} (RFC 8032 test key, from cid.examples)",
        )
        zone = sign_record(
            ZoneBody(
                display_name="cid demo registry",
                service_keys=[self.registry_service.public_key],
            ),
            name=".",
            serial=1,
            key=self.root,
            nbf=now - 60,
            exp=now + 30 * 86_400,
            ttl=3600,
        )
        records = [zone]
        for ns, _, _ in PROVIDERS:
            anchor, service = SigningKey.generate(), SigningKey.generate()
            self.keys[ns] = (anchor, service)
            records.append(
                sign_record(
                    DelegationBody(keys=[anchor.public_key]),
                    name=ns,
                    serial=1,
                    key=self.root,
                    nbf=now - 60,
                    exp=now + 30 * 86_400,
                )
            )
        async with RegistryClient(self.registry) as client:
            for rec in records:
                await client.submit(rec)
        _say(
            "operator",
            f"root zone published (registry service key {self.registry_service.kid}); "
            "delegated: "
            + ", ".join(f"{ns} -> {self.keys[ns][0].kid[:8]}…" for ns, _, _ in PROVIDERS),
        )

    # -- 3. providers ---------------------------------------------------------------------------

    async def start_providers(self) -> None:
        waits = []
        for ns, config_name, label in PROVIDERS:
            anchor, service = self.keys[ns]
            config = self.configs / config_name
            if not config.exists():
                raise RuntimeError(f"provider configuration {config} not found (--configs DIR)")
            ready, log = self.work / f"{ns}.ready", self.work / f"{ns}.log"
            proc = self.procs.start(
                ns,
                [
                    sys.executable,
                    "-m",
                    "cid_provider.cli",
                    "serve",
                    "--config",
                    str(config),
                    "--registry",
                    self.registry,
                    "--root-keys",
                    str(self.root_pub_file),
                    "--namespace-key",
                    str(_write_key(self.work / f"{ns}.key", anchor)),
                    "--service-key",
                    str(_write_key(self.work / f"{ns}-service.key", service)),
                    "--workdir",
                    str(self.work / "tasks" / ns),
                    "--port",
                    "0",
                    "--ready-file",
                    str(ready),
                ],
                log,
            )
            waits.append(
                (
                    ns,
                    f"{label:<14} ({config_name})",
                    _wait_ready(proc, ready, log, f"provider {ns}"),
                )
            )
        results = await asyncio.gather(*(w for _, _, w in waits))
        for (ns, label, _), (host, port) in zip(waits, results, strict=True):
            self.providers[ns] = f"http://{host}:{port}"
            _say(
                "provider",
                f"{label} cid-provider serve at {self.providers[ns]}: "
                "zone + offers registered, availability refreshed live",
            )

    # -- 4. the scheduler's queries ----------------------------------------------------------

    async def schedule(self) -> tuple[Identifier, Identifier]:
        catalogue = Catalogue(self.registry, [self.root.public_key], latency=default_model())
        try:
            await catalogue.sync()
            _say(
                "catalogue",
                f"scheduler replica: {len(catalogue)} records, verified from the trust anchor "
                f"(feed up to rseq {catalogue.rseq}, hash chain and signed heads checked)",
            )
            demand = ResourceDemand(vcpu=1, memory_mib=2048, storage_gib=100)
            q1 = Query.model_validate(
                {
                    "class": "general",
                    "demand": demand,
                    "duration_s": 3 * MONTH_S,
                    "currency": "CNY",
                    "order": ["cost"],
                    "limit": 5,
                }
            )
            _say("query", "1 vCPU + 2 GiB + 100 GiB storage for 3 months, cheapest first:")
            r1 = catalogue.search(q1).results
            for i, m in enumerate(r1, 1):
                _detail(f"{i}. {m.name!s:<24} {_money(m.cost.total):>8} {m.cost.currency}")
            best = r1[0]
            items = " + ".join(
                f"{i.resource} {i.quantity} x {i.amount}/{i.per} ({_money(i.cost)})"
                for i in best.cost.items
            )
            _say(
                "query",
                f"cheapest: {best.name} at {_money(best.cost.total)} {best.cost.currency}"
                f" = {items}",
            )
            q2 = Query.model_validate(
                {
                    "class": "intelligent",
                    "accelerator": {},
                    "near": {"region": "CN-TJ", "max_rtt_us": 10_000},
                    "order": ["renewable"],
                    "limit": 5,
                }
            )
            _say("query", "the greenest accelerator pool within 10 ms of Tianjin:")
            r2 = catalogue.search(q2).results
            for i, m in enumerate(r2, 1):
                body = _listing(catalogue, m.name)
                acc = body.unit.accelerators
                kind = "" if acc is None else f"{acc.count}x {acc.model}"
                rtt = "-" if m.rtt_us is None else f"{m.rtt_us / 1000:.1f} ms"
                _detail(
                    f"{i}. {m.name!s:<26} {kind:<16} renewable "
                    f"{_renewable(catalogue, m.name):<4} rtt {rtt} to CN-TJ"
                )
            green = r2[0]
            _say("query", f"greenest: {green.name} ({_renewable(catalogue, green.name)} renewable)")
            return best.name, green.name
        finally:
            await catalogue.close()

    # -- 5. negotiate, invoke, verify ---------------------------------------------------------

    async def transact(self, offer: Identifier, accelerator: Identifier) -> None:
        key = SigningKey.generate()
        _say("requester", f"new requester key {key.kid}")
        steps: dict[str, Callable[[Envelope], str]] = {
            "demand": lambda e: (
                f"demand sent: {e.body_value['quantity']} unit for "
                f"{e.body_value['duration_s'] // MONTH_S} months, at most "
                f"{e.body_value['max_price']['total']} {e.body_value['max_price']['currency']} "
                f"(signed, aud={e.header.aud})"
            ),
            "quote": lambda e: (
                f"quote {e.body_value['quote_id'][:10]}… verified (service key "
                f"{e.sigs[0].kid[:8]}…): {_money(e.body_value['price']['total'])} "
                f"{e.body_value['price']['currency']}, price recomputed from the offer, valid "
                f"{e.body_value['expires'] - int(time.time())} s"
            ),
            "accept": lambda e: (
                f"accept sent (names the quote by id and digest {e.body_value['quote'][:10]}…)"
            ),
            "agreement": lambda e: (
                f"agreement {e.body_value['agreement_id'][:10]}… signed by "
                "the provider restates the quote exactly"
            ),
            "countersigned": lambda e: (
                "countersigned: 2 signatures (provider + requester) "
                "verified; provider confirms state agreed"
            ),
        }

        def trace(what: str, env: Envelope) -> None:
            render = steps.get(what)
            if render is not None:
                _say("negotiate", render(env))

        async with (
            Resolver([self.registry], [self.root.public_key]) as resolver,
            Requester(key, resolver, trace=trace) as req,
        ):
            now = int(time.time())
            agreement_env = await req.negotiate(
                offer,
                quantity=1,
                duration_s=3 * MONTH_S,
                start_after=now,
                start_before=now + 300,
                max_price=MaxPrice(currency="CNY", total=Decimal("40")),
                resources=ResourceDemand(vcpu=1, memory_mib=2048, storage_gib=100, units=1),
            )
            agreement, provider = await req.open_agreement(agreement_env)
            lim = agreement.limits
            _say(
                "agreement",
                f"{agreement.agreement_id[:10]}… with {provider.display_name}: "
                f"{_money(agreement.price.total)} {agreement.price.currency} for "
                f"{agreement.duration_s // MONTH_S} months; per task {lim.cpu_s} cpu-s, "
                f"{lim.memory_mib} MiB, {lim.wall_s} s wall, {lim.output_bytes} B out",
            )
            (self.work / "agreement.json").write_text(json.dumps(agreement_env.to_value()))
            await self._availability(offer)

            task = req.task(
                agreement,
                ["python3", "-c", COMPUTATION],
                limits=TaskLimits(
                    cpu_s=min(lim.cpu_s, 30),
                    memory_mib=min(lim.memory_mib, 512),
                    wall_s=min(lim.wall_s, 60),
                    output_bytes=min(lim.output_bytes, 1 << 20),
                ),
            )
            task_env = req.sign_task(agreement, task)
            task_id = await req.submit(task_env, agreement, provider)
            _say(
                "invoke",
                f"task {task_id[:10]}… submitted: python3 -c <sieve of primes below 200000> "
                "(signed, fresh nonce, aud=provider)",
            )
            states = []
            async for status in req.events(task_id):
                states.append(status.state)
                extra = "" if status.exit_code is None else f" (exit {status.exit_code})"
                _say("status", f"{status.state + extra:<18} (signed status, live over SSE)")
            outcome = await req.result(task_id)
            data = await req.output(task_id, "out/result.json")
            answer = json.loads(data)
            out = outcome.result.outputs[0]
            _say(
                "result",
                f"{out.path}: {out.size_bytes} B, sha256 {out.sha256[:16]}… matches the signed "
                f"result; primes below {answer['below']} = {answer['primes']} "
                f"(largest {answer['largest']})",
            )
            receipt_file = self.work / "receipt.json"
            if outcome.receipt_envelope is None:
                raise RuntimeError("the provider issued no receipt for a task that ran")
            receipt_file.write_text(json.dumps(outcome.receipt_envelope.to_value()))
            if not self.quick:
                await self._attacks(
                    req,
                    agreement_env=agreement_env,
                    agreement=agreement,
                    task_env=task_env,
                    provider=provider,
                    accelerator=accelerator,
                )
        await self._verify_offline(receipt_file, provider.service_keys, key.public_key)

    async def _availability(self, offer: Identifier) -> None:
        """The provider's signed refresh: one unit fewer free, published at once."""
        async with RegistryClient(self.registry) as client:
            for _ in range(50):
                answer = await client.resolve(offer)
                refresh = next(
                    (
                        r
                        for r in answer.get("records", [])
                        if r["header"]["typ"].endswith("refresh")
                    ),
                    None,
                )
                offer_rec = next(
                    r for r in answer.get("records", []) if r["header"]["typ"].endswith("offer")
                )
                total = offer_rec["body"]["availability"]["units_total"]
                if refresh is not None and refresh["body"]["units_free"] < total:
                    _say(
                        "registry",
                        f"{offer} now shows {refresh['body']['units_free']}/{total} units free "
                        f"(signed refresh serial {refresh['header']['serial']})",
                    )
                    return
                await asyncio.sleep(0.1)

    async def _attacks(
        self,
        req: Requester,
        *,
        agreement_env: Envelope,
        agreement: Agreement,
        task_env: Envelope,
        provider: ProviderEndpoints,
        accelerator: Identifier,
    ) -> None:
        _say("attack", "what an untrusting provider and requester refuse:")
        trust = req.resolver.state.trust
        now = int(time.time())
        answer = await req.resolver.resolve(agreement.offer)
        offer_rec = answer.of_type("offer")
        assert offer_rec is not None
        tampered = offer_rec.envelope.to_value()
        tampered["body"]["price"]["items"][0]["amount"] = "0.5"
        await _refuse(
            "an offer whose price was lowered after signing",
            lambda: trust.verify(Envelope.from_value(tampered), now=now),
        )
        await req.resolver.resolve("general.tianjin")  # the tianjin key is now known too
        hijack = sign_record(
            offer_rec.body,
            name=Identifier("cheap.guizhou"),
            serial=1,
            key=self.keys["tianjin"][0],
            nbf=now - 60,
            exp=now + 600,
        )
        await _refuse(
            "tianjin's key signing an offer under guizhou",
            lambda: trust.verify(hijack.envelope, now=now),
        )
        await _refuse(
            "the same task envelope submitted again",
            lambda: req.submit(task_env, agreement, provider),
        )
        over = agreement.limits.model_copy(update={"cpu_s": agreement.limits.cpu_s + 1})
        await _refuse(
            "a task over the agreement's cpu_s limit",
            lambda: req.invoke(agreement_env, req.task(agreement, ["true"], limits=over)),
        )
        other = await req.provider_of(accelerator)
        elsewhere = req.sign_task(agreement, req.task(agreement, ["true"]))
        await _refuse(
            f"the agreement taken to {other.namespace}",
            lambda: req.submit(elsewhere, agreement, other),
        )
        forged = agreement_env.to_value()
        forged["body"]["price"]["total"] = "3"
        await _refuse(
            "an agreement whose price was edited",
            lambda: verify_agreement(
                Envelope.from_value(forged),
                provider_keys=provider.service_keys,
                requester_key=req.public_key,
                now=now,
            ),
        )

    async def _verify_offline(
        self, receipt_file: Path, service_keys: Mapping[str, PublicKey], requester: PublicKey
    ) -> None:
        """Receipt verification needs no network: two files and the provider's service key."""
        now = int(time.time())
        agreement_env = Envelope.from_value(json.loads((self.work / "agreement.json").read_text()))
        agreement = verify_agreement(
            agreement_env, provider_keys=service_keys, requester_key=requester, now=now
        )
        receipt_env = Envelope.from_value(json.loads(receipt_file.read_text()))
        receipt = verify_receipt(receipt_env, agreement, service_keys=service_keys, now=now)
        u = receipt.usage
        _say(
            "receipt",
            f"verified offline from agreement.json + receipt.json: signed by "
            f"{receipt_env.sigs[0].kid[:8]}…, usage {u.cpu_s} cpu-s, {u.wall_s} s wall, "
            f"{u.memory_mib_s} MiB·s; cost {receipt.cost.total} {receipt.cost.currency} "
            "at the agreement's rates",
        )
        tampered = receipt_env.to_value()
        tampered["body"]["usage"]["wall_s"] = u.wall_s + 3600
        await _refuse(
            "a receipt altered after signing",
            lambda: verify_receipt(
                Envelope.from_value(tampered), agreement, service_keys=service_keys, now=now
            ),
        )

    # -- the whole story ---------------------------------------------------------------------

    async def run(self) -> None:
        await self.start_registry()
        await self.operate()
        await self.start_providers()
        offer, accelerator = await self.schedule()
        await self.transact(offer, accelerator)
        if self.keep:
            _say("keep", f"still running: registry {self.registry}")
            for ns, url in self.providers.items():
                _detail(f"{ns:<14} {url}")
            _detail(f"files in {self.work}; try: cid --registry {self.registry} search "
                    "--query-json '{\"class\": \"general\"}'")  # fmt: skip
            _detail("Ctrl-C to stop")
            await asyncio.Event().wait()


def _listing(catalogue: Catalogue, name: Identifier) -> OfferBody:
    return catalogue.matcher.listing(name).offer


def _renewable(catalogue: Catalogue, name: Identifier) -> str:
    energy = _listing(catalogue, name).energy
    return "?" if energy is None else f"{Decimal(energy.renewable_share) * 100:.0f}%"


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM (and SIGHUP) unwind like Ctrl-C, so that ``finally`` stops the subprocesses."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cid.demo", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="the short form (no attack tour)")
    parser.add_argument(
        "--keep", action="store_true", help="leave the registry and providers running (Ctrl-C)"
    )
    parser.add_argument(
        "--configs",
        type=Path,
        default=_repo_examples(),
        help="directory of the providers' TOML files (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="cid-demo-"))
    demo = Demo(quick=args.quick, keep=args.keep, configs=args.configs, work=work)
    print("cid demo: find, negotiate and invoke compute across three providers\n", flush=True)
    code = 0
    with _signals_raise():
        try:
            asyncio.run(demo.run())
        except KeyboardInterrupt:
            print("\ninterrupted", flush=True)
            code = 130
        except (CidError, RuntimeError) as e:
            print(f"\ndemo failure: {e}", file=sys.stderr, flush=True)
            code = 1
        finally:
            demo.procs.stop_all()
            if not args.keep or code != 0:
                shutil.rmtree(work, ignore_errors=True)
    if code == 0:
        print(
            f"\ndemo complete in {time.monotonic() - started:.1f} s: found, negotiated, invoked, "
            "verified; every subprocess stopped",
            flush=True,
        )
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
