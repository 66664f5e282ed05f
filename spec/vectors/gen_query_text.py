#!/usr/bin/env python3
"""Generate ``query_text.json``, the test vectors of spec section 13 (the textual query language).

The cases below are written by hand, each with the requirements it exercises:

* ``valid``: a text, the query object (§7) it compiles to, and its canonical
  text (§13.5). The expected query is written here by hand (only the members
  that are set; defaults are filled in by the query model) and the script fails
  loudly when the reference parser ``cid.query_text`` disagrees;
* ``invalid``: a text with exactly one fault, refused with QUERY_SYNTAX (1005):
  the ``offset`` (in code points) and ``token`` of the offending token
  ([REQ-QTX-040]) and, for a rule of §7, the ``field`` and ``rule``
  ([REQ-QTX-041]; ``rule`` is null where §7.8 and §10.3 register no token, as
  for a range: then any rule token will do);
* ``render``: query objects and the canonical text a renderer writes for each
  ([REQ-QTX-031]), which parses back to the same object ([REQ-QTX-030]).

Every expectation (offsets, tokens, fields, rules, canonical texts) is written
by hand and checked against the reference; only then is the file written, so the
vectors and the implementation cannot drift apart. ``expected`` (what would have
been accepted) is free text and is not part of the vectors.

Usage::

    .venv/bin/python spec/vectors/gen_query_text.py          # write
    .venv/bin/python spec/vectors/gen_query_text.py --check  # verify
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "query_text.json"

try:
    from cid.errors import QuerySyntaxError
    from cid.model import validate
    from cid.query import Query
    from cid.query_text import parse, to_text
except ImportError:  # run from a checkout without an installed package
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    from cid.errors import QuerySyntaxError
    from cid.model import validate
    from cid.query import Query
    from cid.query_text import parse, to_text

SCHEDULER = (
    "class=intelligent accel.model=a100-80g accel.count>=8 near=CN-TJ rtt<=3ms "
    "renewable>=0.5 order=cost,latency limit=10 currency=CNY"
)
WORKED = "vcpu=1 mem=2GiB storage=100GiB for 3months order=cost currency=CNY"
MAX_ASCII = "vcpu=1" + " " * 4090  # 4,096 code points
MAX_ASTRAL = 'city="' + "😀" * 200 + '"' + " " * 3889  # 4,096 code points, 4,296 UTF-16 units
CNY = {"currency": "CNY"}
DEMAND = "demand"

# (text, expected query members, requirements, note)
# fmt: off
VALID: list[tuple[str, dict[str, Any], list[str], str]] = [
    # 13: the examples at the top of the section
    (SCHEDULER, {"class": "intelligent", "accelerator": {"model": ["a100-80g"], "count_min": 8},
                 "near": {"region": "CN-TJ", "max_rtt_us": 3000}, "renewable_share_min": "0.5",
                 "order": ["cost", "latency"], "limit": 10, "currency": "CNY"},
     ["REQ-QTX-001", "REQ-QTX-011", "REQ-QTX-013", "REQ-QTX-022", "REQ-QTX-024"],
     "the scheduler's example of section 13"),
    (WORKED, {DEMAND: {"vcpu": 1, "memory_mib": 2048, "storage_gib": 100},
              "duration_s": 7_884_000, "order": ["cost"], "currency": "CNY"},
     ["REQ-QTX-001", "REQ-QTX-011", "REQ-QTX-020", "REQ-QTX-021"],
     "the worked example of 4.10.1: demands, sizes, 3 months of 730 hours"),
    # 13.1 text and tokens
    ("", {}, ["REQ-QTX-001"], "the empty text is the empty query"),
    (" \t\r\n ", {}, ["REQ-QTX-001", "REQ-QTX-002"], "white space only"),
    ("vcpu=1\tmem=2GiB\r\nstorage=1TiB\n", {DEMAND: {"vcpu": 1, "memory_mib": 2048,
                                                      "storage_gib": 1024}},
     ["REQ-QTX-002"], "tab, CR and LF separate tokens"),
    ("  vcpu = 2   mem >= 4GiB ", {DEMAND: {"vcpu": 2}, "memory_mib_min": 4096},
     ["REQ-QTX-002"], "white space around operators is ignored"),
    ("accel.model in h20 , a100-80g ,h800", {"accelerator": {"model": ["h20", "a100-80g", "h800"]}},
     ["REQ-QTX-002", "REQ-QTX-010"], "white space around commas; the list keeps its order"),
    ("city=天津", {"city_in": ["天津"]}, ["REQ-QTX-002"], "a word of Chinese characters"),
    ("city=😀#1/O'Hare", {"city_in": ["😀#1/O'Hare"]}, ["REQ-QTX-002"],
     "an astral character and punctuation other than = < > ! , \" are word characters"),
    (MAX_ASCII, {DEMAND: {"vcpu": 1}}, ["REQ-QTX-001"], "exactly 4,096 code points"),
    (MAX_ASTRAL, {"city_in": ["😀" * 200]}, ["REQ-QTX-001"],
     "4,096 code points (more UTF-16 code units and octets): the limit counts code points"),
    # quoted strings
    ('city in "Tianjin New Area",天津', {"city_in": ["Tianjin New Area", "天津"]},
     ["REQ-QTX-003"], "a value with a space is quoted"),
    ('city="say \\"hi\\" \\\\o/"', {"city_in": ['say "hi" \\o/']}, ["REQ-QTX-003"],
     'the escapes \\" and \\\\'),
    ('city="in","not","for"', {"city_in": ["in", "not", "for"]}, ["REQ-QTX-003"],
     "the words in, not and for as quoted values"),
    ('city="a,b","x=y","<>!"', {"city_in": ["a,b", "x=y", "<>!"]}, ["REQ-QTX-003"],
     "commas and operator characters inside quotes"),
    ('city="天津 滨海"', {"city_in": ["天津 滨海"]}, ["REQ-QTX-003"], "a quoted Chinese value"),
    ('class="general" vcpu="2" region in "CN-TJ"', {"class": "general", DEMAND: {"vcpu": 2},
                                                     "region_in": ["CN-TJ"]},
     ["REQ-QTX-003"], "a quoted string stands for the text it holds, for any value"),
    # 13.3 keys and operators (Table 13-1)
    ("within=ctyun", {"within": "ctyun"}, ["REQ-QTX-010"], "within: an identifier"),
    ("within=池1.天津.天翼云", {"within": "池1.天津.天翼云"}, ["REQ-QTX-010"],
     "within: a Chinese identifier"),
    ("within=CID:A100.Tianjin.CTYUN", {"within": "a100.tianjin.ctyun"}, ["REQ-QTX-010"],
     "within: the identifier in canonical form (section 2)"),
    ("class=super", {"class": "super"}, ["REQ-QTX-010"], "class"),
    ("arch=x86_64,aarch64", {"arch": ["x86_64", "aarch64"]}, ["REQ-QTX-010"], "arch: a list"),
    ("arch in riscv64", {"arch": ["riscv64"]}, ["REQ-QTX-010"], "in is a synonym of ="),
    ("accel=any", {"accelerator": {}}, ["REQ-QTX-010"], "accel=any: has an accelerator"),
    ("accel.vendor=huawei accel.family=ascend", {"accelerator": {"vendor": "huawei",
                                                                 "family": "ascend"}},
     ["REQ-QTX-010"], "accel.vendor and accel.family"),
    ("accel.mem>=80GiB", {"accelerator": {"memory_gib_min": 80}}, ["REQ-QTX-010", "REQ-QTX-020"],
     "accel.mem in whole GiB"),
    ("tflops.bf16>=312 tflops.fp64>=9.70", {"tflops_min": {"bf16": "312", "fp64": "9.7"}},
     ["REQ-QTX-010", "REQ-QTX-024"], "tflops.<precision>: decimals in canonical form"),
    ("nodes=16", {DEMAND: {"nodes": 16}}, ["REQ-QTX-010", "REQ-QTX-011"], "nodes demands nodes"),
    ("units=3", {DEMAND: {"units": 3}}, ["REQ-QTX-010", "REQ-QTX-011"], "units demands units"),
    ("region in CN-TJ,CN-BJ", {"region_in": ["CN-TJ", "CN-BJ"]}, ["REQ-QTX-010"], "region in"),
    ("region=CN-GZ", {"region_in": ["CN-GZ"]}, ["REQ-QTX-010"], "region="),
    ("region not in CN-HE", {"region_not_in": ["CN-HE"]}, ["REQ-QTX-010"], "not in is !="),
    ("region!=CN-HE,CN-SH", {"region_not_in": ["CN-HE", "CN-SH"]}, ["REQ-QTX-010"], "region!="),
    ("country in CN,SG", {"country_in": ["CN", "SG"]}, ["REQ-QTX-010"], "country"),
    ("near=jingjinji", {"near": {"latency_circle": "jingjinji"}}, ["REQ-QTX-013"],
     "near with a latency-circle token"),
    ("rtt<=3ms near=CN-TJ", {"near": {"region": "CN-TJ", "max_rtt_us": 3000}},
     ["REQ-QTX-013", "REQ-QTX-022"], "rtt before near: clauses come in any order"),
    ("sw=ubuntu,pytorch", {"software": [{"name": "ubuntu"}, {"name": "pytorch"}]},
     ["REQ-QTX-010", "REQ-QTX-012"], "sw: software without versions, in order"),
    ("compliance=mlps-3,iso27001", {"compliance": ["mlps-3", "iso27001"]}, ["REQ-QTX-010"],
     "compliance"),
    ("free>=2", {"units_free_min": 2}, ["REQ-QTX-010"], "free"),
    ("currency=CNY order=cost,renewable weights=cost:2,renewable:0.50",
     {**CNY, "order": ["cost", "renewable"], "weights": {"cost": "2", "renewable": "0.5"}},
     ["REQ-QTX-010", "REQ-QTX-024"], "order and weights"),
    ("order=availability,renewable", {"order": ["availability", "renewable"]}, ["REQ-QTX-010"],
     "order without cost needs no currency"),
    ("limit=1000", {"limit": 1000}, ["REQ-QTX-010"], "limit"),
    ("limit=10", {}, ["REQ-QTX-010"], "limit=10 is the default"),
    ("cursor=abc_DEF-1", {"cursor": "abc_DEF-1"}, ["REQ-QTX-010"], "cursor"),
    # the quantity keys
    ("vcpu>=4 mem>=8GiB storage>=1TiB accel.count>=4",
     {"vcpu_min": 4, "memory_mib_min": 8192, "storage_gib_min": 1024,
      "accelerator": {"count_min": 4}},
     ["REQ-QTX-011"], ">= asks each unit for at least x"),
    ("vcpu=4 mem=8GiB storage=1TiB accel.count=8",
     {DEMAND: {"vcpu": 4, "memory_mib": 8192, "storage_gib": 1024, "accelerators": 8}},
     ["REQ-QTX-011"], "= demands x"),
    ("vcpu>=2 vcpu=16", {"vcpu_min": 2, DEMAND: {"vcpu": 16}}, ["REQ-QTX-011", "REQ-QTX-012"],
     "one key with two operators sets two members"),
    ("vcpu=1.0 free>=007", {DEMAND: {"vcpu": 1}, "units_free_min": 7}, ["REQ-QTX-011"],
     "a whole number may be written 1.0 or with leading zeros"),
    # duplicates and software
    ("sw=ubuntu sw.cuda>=12.0,<13 sw=rocm",
     {"software": [{"name": "ubuntu"}, {"name": "cuda", "version": ">=12.0,<13"},
                   {"name": "rocm"}]},
     ["REQ-QTX-012", "REQ-QTX-014"], "every sw clause adds to software, in the order written"),
    ("region in CN-TJ region not in CN-HE", {"region_in": ["CN-TJ"], "region_not_in": ["CN-HE"]},
     ["REQ-QTX-012"], "region in and not in set two members"),
    ("accel=any accel.vendor=nvidia", {"accelerator": {"vendor": "nvidia"}}, ["REQ-QTX-012"],
     "accel=any refined by another accel clause"),
    # 13.3.1 software versions
    ("sw.cuda >= 12 , < 13", {"software": [{"name": "cuda", "version": ">=12,<13"}]},
     ["REQ-QTX-014"], "the range is written without white space"),
    ("sw.ubuntu=22.04", {"software": [{"name": "ubuntu", "version": "==22.04"}]},
     ["REQ-QTX-014"], "= is a synonym of =="),
    ("sw.nccl>2,<=2.18.1.1,!=2.5",
     {"software": [{"name": "nccl", "version": ">2,<=2.18.1.1,!=2.5"}]},
     ["REQ-QTX-014"], "every comparison; four components"),
    ("sw.x>=1,>=2,>=3,>=4,>=5,>=6,>=7,>=8",
     {"software": [{"name": "x", "version": ">=1,>=2,>=3,>=4,>=5,>=6,>=7,>=8"}]},
     ["REQ-QTX-014"], "eight clauses, the most a range has"),
    # 13.4 values and units
    ("mem>=1.5GiB", {"memory_mib_min": 1536}, ["REQ-QTX-020"], "1.5GiB is 1,536 MiB"),
    ("mem=512MiB", {DEMAND: {"memory_mib": 512}}, ["REQ-QTX-020"], "MiB"),
    ("mem=2gib storage=1tIb", {DEMAND: {"memory_mib": 2048, "storage_gib": 1024}},
     ["REQ-QTX-020"], "units are case-insensitive"),
    ("storage>=1PiB", {"storage_gib_min": 1_048_576}, ["REQ-QTX-020"], "PiB"),
    ("storage=0.5TiB", {DEMAND: {"storage_gib": 512}}, ["REQ-QTX-020"],
     "a fraction of a larger unit that is a whole number of GiB"),
    ("for 90s", {"duration_s": 90}, ["REQ-QTX-021"], "seconds"),
    ("for 2 hours", {"duration_s": 7200}, ["REQ-QTX-021"], "white space before the unit"),
    ("for 1.5min", {"duration_s": 90}, ["REQ-QTX-021"], "a decimal duration, whole seconds"),
    ("for 1w", {"duration_s": 604_800}, ["REQ-QTX-021"], "a week is 7 days"),
    ("for 1mo", {"duration_s": 2_628_000}, ["REQ-QTX-021"], "a month is 730 hours"),
    ("for 1 yr", {"duration_s": 31_536_000}, ["REQ-QTX-021"], "a year is 8,760 hours"),
    ("for 3 MONTHS", {"duration_s": 7_884_000}, ["REQ-QTX-021"], "duration units ignore case"),
    ("for 2days", {"duration_s": 172_800}, ["REQ-QTX-021"], "days"),
    ("near=CN-TJ rtt<=3500us", {"near": {"region": "CN-TJ", "max_rtt_us": 3500}},
     ["REQ-QTX-022"], "microseconds"),
    ("near=CN-TJ rtt<=250µs", {"near": {"region": "CN-TJ", "max_rtt_us": 250}},
     ["REQ-QTX-022"], "µs with U+00B5 MICRO SIGN"),
    ("near=CN-TJ rtt<=250μs", {"near": {"region": "CN-TJ", "max_rtt_us": 250}},
     ["REQ-QTX-022"], "μs with U+03BC GREEK SMALL LETTER MU"),
    ("near=CN-TJ rtt<=1.5ms", {"near": {"region": "CN-TJ", "max_rtt_us": 1500}},
     ["REQ-QTX-022"], "a decimal time, whole microseconds"),
    ("near=CN-TJ rtt<=1s", {"near": {"region": "CN-TJ", "max_rtt_us": 1_000_000}},
     ["REQ-QTX-022"], "seconds"),
    ("near=CN-TJ rtt<=3MS", {"near": {"region": "CN-TJ", "max_rtt_us": 3000}},
     ["REQ-QTX-022"], "time units ignore case"),
    ("currency=CNY price<=0.05", {**CNY, "unit_price_max": "0.05"}, ["REQ-QTX-023"],
     "a price without a period (per hour, section 7)"),
    ("currency=CNY price<=7/mo", {**CNY, "unit_price_max": "7", "unit_price_per": "month"},
     ["REQ-QTX-023"], "a price per month"),
    ("currency=CNY price<=2.50/Day", {**CNY, "unit_price_max": "2.5", "unit_price_per": "day"},
     ["REQ-QTX-023", "REQ-QTX-024"], "a period ignores case; the decimal is canonical"),
    ("currency=CNY price<=1/s", {**CNY, "unit_price_max": "1", "unit_price_per": "second"},
     ["REQ-QTX-023"], "a price per second"),
    ("currency=CNY total<=100.50 for 3mo",
     {**CNY, "total_cost_max": "100.5", "duration_s": 7_884_000},
     ["REQ-QTX-023", "REQ-QTX-024"], "total"),
    ("renewable>=62.5%", {"renewable_share_min": "0.625"}, ["REQ-QTX-024"], "a share in per cent"),
    ("renewable>=100%", {"renewable_share_min": "1"}, ["REQ-QTX-024"], "100% is 1"),
    ("renewable>=0", {"renewable_share_min": "0"}, ["REQ-QTX-024"], "a share of 0"),
    ("renewable>=0.123456789012345678", {"renewable_share_min": "0.123456789012345678"},
     ["REQ-QTX-024"], "18 fractional digits, carried exactly"),
    ("currency=CNY total<=1234567890123456789012345678 for 1h",
     {**CNY, "total_cost_max": "1234567890123456789012345678", "duration_s": 3600},
     ["REQ-QTX-024"], "28 integer digits, carried exactly (not through a float)"),
    ("currency=CNY price<=0.000000000000000001", {**CNY, "unit_price_max": "0.000000000000000001"},
     ["REQ-QTX-024"], "the smallest decimal of section 5.3"),
    ("accel.model=" + ",".join(f"m{i}" for i in range(1, 17)),
     {"accelerator": {"model": [f"m{i}" for i in range(1, 17)]}}, ["REQ-QTX-001", "REQ-QTX-010"],
     "16 models, the most section 7 allows"),
    (" ".join(f"tflops.{p}>=1" for p in ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8",
                                         "int4")),
     {"tflops_min": dict.fromkeys(("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4"),
                                  "1")},
     ["REQ-QTX-001", "REQ-QTX-010"], "every precision of Table 4-3"),
    ("carbon<=400", {"carbon_g_per_kwh_max": 400}, ["REQ-QTX-010"], "carbon"),
    ("carbon<=400g/kWh", {"carbon_g_per_kwh_max": 400}, ["REQ-QTX-010"], "carbon with its unit"),
    ("carbon<=400G/KWH", {"carbon_g_per_kwh_max": 400}, ["REQ-QTX-010"], "g/kWh ignores case"),
]

# (text, offset, token, field, rule, requirements, note); field None: a syntax error;
# rule None with a field: a rule of section 7 that registers no token (any token will do)
NO = None
INVALID: list[tuple[str, int, str, str | None, str | None, list[str], str]] = [
    # 13.1: characters and tokens
    ("vcpu=1\x00", 6, "\x00", NO, NO, ["REQ-QTX-002"], "a control character"),
    ("vcpu=1\x0bmem=2GiB", 6, "\x0b", NO, NO, ["REQ-QTX-002"],
     "vertical tab is not white space here"),
    ("vcpu=1\u00a0mem=2GiB", 6, "\u00a0", NO, NO, ["REQ-QTX-002"], "NO-BREAK SPACE (Zs)"),
    ("vcpu=1\u3000mem=2GiB", 6, "\u3000", NO, NO, ["REQ-QTX-002"], "IDEOGRAPHIC SPACE (Zs)"),
    ("city=a\u200bb", 6, "\u200b", NO, NO, ["REQ-QTX-002"], "ZERO WIDTH SPACE (Cf) in a word"),
    ("city=天津\u2028", 7, "\u2028", NO, NO, ["REQ-QTX-002"], "LINE SEPARATOR (Zl)"),
    ("city=\ue000", 5, "\ue000", NO, NO, ["REQ-QTX-002"], "a private-use character (Co)"),
    ("city=😀\u0085", 6, "\u0085", NO, NO, ["REQ-QTX-002"],
     "a C1 control; the offset counts code points (an astral character is one)"),
    ("vcpu!1", 4, "!", NO, NO, ["REQ-QTX-002"], "! alone is not an operator"),
    ("vcpu>>1", 4, ">", NO, NO, ["REQ-QTX-002", "REQ-QTX-010"],
     "the longest operator that matches: > then >"),
    ("vcpu=>1", 5, ">", NO, NO, ["REQ-QTX-002", "REQ-QTX-010"], "=> is = then >"),
    ("=1", 0, "=", NO, NO, ["REQ-QTX-001"], "a clause starts with a key"),
    (",", 0, ",", NO, NO, ["REQ-QTX-001"], "a comma alone"),
    ('city="a"vcpu=1', 8, "vcpu", NO, NO, ["REQ-QTX-001"], "no white space between clauses"),
    ('city in"a"', 7, '"a"', NO, NO, ["REQ-QTX-001"], "no white space after in"),
    # quoted strings
    ('city="Tianjin', 5, '"Tianjin', NO, NO, ["REQ-QTX-003"], "an unterminated quoted string"),
    ('city="a\\b"', 7, "\\b", NO, NO, ["REQ-QTX-003"], "\\b is not an escape"),
    ('city="a\\u0041"', 7, "\\u", NO, NO, ["REQ-QTX-003"], "\\u is not an escape"),
    ('city="a\tb"', 7, "\t", NO, NO, ["REQ-QTX-003"], "a tab inside a quoted string"),
    ('city="a\nb"', 7, "\n", NO, NO, ["REQ-QTX-003"], "a line break inside a quoted string"),
    ('city="a\u00a0b"', 7, "\u00a0", NO, NO, ["REQ-QTX-003"],
     "NO-BREAK SPACE inside a quoted string"),
    ("city=in", 5, "in", NO, NO, ["REQ-QTX-003"], "in as a value must be quoted"),
    ("sw=not", 3, "not", NO, NO, ["REQ-QTX-003"], "not as a value must be quoted"),
    ("city=a,for", 7, "for", NO, NO, ["REQ-QTX-003"], "for as a value must be quoted"),
    ('accel.model="A 100"', 12, '"A 100"', NO, NO, ["REQ-QTX-003", "REQ-QTX-040"],
     "the offending token is the quoted string as written"),
    ('vcpu="two"', 5, '"two"', NO, NO, ["REQ-QTX-003", "REQ-QTX-040"],
     "a quoted value is read as the text it holds"),
    # 13.1: length
    ("vcpu=1" + " " * 4091, 4096, "", NO, NO, ["REQ-QTX-001", "REQ-QTX-040"],
     "4,097 code points: refused at offset 4096"),
    ('city="' + "😀" * 200 + '"' + " " * 3890, 4096, "", NO, NO, ["REQ-QTX-001", "REQ-QTX-040"],
     "4,097 code points (astral characters count one each)"),
    # 13.3 keys and operators
    ("foo=1", 0, "foo", NO, NO, ["REQ-QTX-010"], "an unknown key"),
    ("Class=general", 0, "Class", NO, NO, ["REQ-QTX-010"], "keys are case-sensitive"),
    ("tflops.fp99>=1", 0, "tflops.fp99", NO, NO, ["REQ-QTX-010"], "an unknown precision"),
    ("sw.>=1", 0, "sw.", NO, NO, ["REQ-QTX-010"], "sw. without a name"),
    ("class>=general", 5, ">=", NO, NO, ["REQ-QTX-010"], "class takes only ="),
    ("vcpu<=4", 4, "<=", NO, NO, ["REQ-QTX-010"], "vcpu takes >= or ="),
    ("near=CN-TJ rtt>=3ms", 14, ">=", NO, NO, ["REQ-QTX-010"], "rtt takes only <="),
    ("class in general", 6, "in", NO, NO, ["REQ-QTX-010"], "in only for the list keys"),
    ("country not in CN", 8, "not", NO, NO, ["REQ-QTX-010"], "not in only for region"),
    ("region not CN-HE", 11, "CN-HE", NO, NO, ["REQ-QTX-010"], "not must be followed by in"),
    ("vcpu", 4, "", NO, NO, ["REQ-QTX-010", "REQ-QTX-040"], "the text ends after the key"),
    ("vcpu= ", 6, "", NO, NO, ["REQ-QTX-010", "REQ-QTX-040"],
     "the text ends before the value: offset is the length of the text"),
    ("region in CN-TJ,", 16, "", NO, NO, ["REQ-QTX-010", "REQ-QTX-040"],
     "the text ends after a comma"),
    ("vcpu=1,2", 7, "2", NO, NO, ["REQ-QTX-010"], "vcpu takes one value"),
    ("class=quantum", 6, "quantum", NO, NO, ["REQ-QTX-010"], "not a compute class"),
    ("arch=sparc", 5, "sparc", NO, NO, ["REQ-QTX-010"], "not an architecture"),
    ("accel=some", 6, "some", NO, NO, ["REQ-QTX-010"], "accel takes only any"),
    ("order=speed", 6, "speed", NO, NO, ["REQ-QTX-010"], "not a ranking key"),
    ("weights=cost", 8, "cost", NO, NO, ["REQ-QTX-010"], "a weight is key:decimal"),
    ("near=Tianjin", 5, "Tianjin", NO, NO, ["REQ-QTX-010", "REQ-QTX-013"],
     "neither a region code nor a lower-case token"),
    ("region in tianjin", 10, "tianjin", NO, NO, ["REQ-QTX-010"], "not a region code"),
    ("country=CHN", 8, "CHN", NO, NO, ["REQ-QTX-010"], "not an ISO 3166-1 alpha-2 code"),
    ("currency=cny", 9, "cny", NO, NO, ["REQ-QTX-010"], "not an ISO 4217 code"),
    ("compliance=MLPS", 11, "MLPS", NO, NO, ["REQ-QTX-010"], "not a token"),
    ("within=a..b", 7, "a..b", NO, NO, ["REQ-QTX-010"], "not an identifier"),
    ("city=😀 class=quantum", 13, "quantum", NO, NO, ["REQ-QTX-010", "REQ-QTX-040"],
     "the offset counts code points, not UTF-16 units or octets"),
    ('city="天津" mem=2GB', 14, "2GB", NO, NO, ["REQ-QTX-020", "REQ-QTX-040"],
     "the offset after a quoted Chinese value"),
    # 13.3: each member once
    ("class=general class=super", 20, "super", NO, NO, ["REQ-QTX-012"],
     "a member set twice: at the value of the second clause"),
    ("vcpu=1 vcpu=2", 12, "2", NO, NO, ["REQ-QTX-012"], "a demand set twice"),
    ("region=CN-TJ region in CN-BJ", 23, "CN-BJ", NO, NO, ["REQ-QTX-012"],
     "= and in set the same member"),
    ("accel=any accel=any", 16, "any", NO, NO, ["REQ-QTX-012"], "accel=any twice"),
    ("near=CN-TJ near=jingjinji", 16, "jingjinji", NO, NO, ["REQ-QTX-012", "REQ-QTX-013"],
     "near twice, whichever it names"),
    ("for 1h for 2h", 11, "2h", NO, NO, ["REQ-QTX-012"], "for twice"),
    ("tflops.fp64>=1 tflops.fp64>=2", 28, "2", NO, NO, ["REQ-QTX-012"], "a precision twice"),
    ("currency=CNY price<=1/h price<=2", 31, "2", NO, NO, ["REQ-QTX-012"], "price twice"),
    ("currency=CNY order=cost weights=cost:1,cost:2", 39, "cost:2", NO, NO, ["REQ-QTX-012"],
     "a weight twice"),
    # 13.3: rtt and near (REQ-QTX-013), rules of section 7 at the clause that needs the member
    ("rtt<=3ms", 0, "rtt", "near.max_rtt_us", "requires_region", ["REQ-QTX-013", "REQ-QTX-041"],
     "rtt without near"),
    ("near=jingjinji rtt<=3ms", 15, "rtt", "near.max_rtt_us", "requires_region",
     ["REQ-QTX-013", "REQ-QTX-041"], "rtt with a latency circle"),
    # 13.3.1 software
    ("sw.cuda~=12", 3, "cuda~", NO, NO, ["REQ-QTX-014", "REQ-QTX-040"],
     "~ is a word character: the name is not a token"),
    ("sw.CUDA>=12", 3, "CUDA", NO, NO, ["REQ-QTX-014"], "a software name is a lower-case token"),
    ("sw.cuda in 12", 8, "in", NO, NO, ["REQ-QTX-014"], "sw.<name> takes comparisons"),
    ("sw.cuda>=twelve", 9, "twelve", NO, NO, ["REQ-QTX-014"], "not a version"),
    ("sw.cuda>=12.1.2.3.4", 9, "12.1.2.3.4", NO, NO, ["REQ-QTX-014"],
     "a version has at most four components"),
    ('sw.cuda>="12"', 9, '"12"', NO, NO, ["REQ-QTX-014"], "a version is never quoted"),
    ("sw.cuda>=12,", 12, "", NO, NO, ["REQ-QTX-014", "REQ-QTX-040"], "a comma and nothing after"),
    ("sw.cuda>=1,>=2,>=3,>=4,>=5,>=6,>=7,>=8,>=9", 0, "sw.cuda", "software.0.version",
     "version_range", ["REQ-QTX-014", "REQ-QTX-041"], "nine clauses: section 7 refuses the range"),
    ("sw=rocm sw.x>=1234567.1234567,>=1234567.1234567,>=1234567.1234567,>=1234567.1234567", 8,
     "sw.x", "software.1.version", "version_range", ["REQ-QTX-014", "REQ-QTX-041"],
     "a range longer than 64 characters"),
    # 13.4 values and units
    ("vcpu=1 mem=2GB", 11, "2GB", NO, NO, ["REQ-QTX-020"], "a decimal unit is refused"),
    ("mem=2", 4, "2", NO, NO, ["REQ-QTX-020"], "a size without a unit"),
    ("mem=2 GiB", 4, "2", NO, NO, ["REQ-QTX-020"], "the unit follows the number immediately"),
    ("mem=2KiB", 4, "2KiB", NO, NO, ["REQ-QTX-020"], "KiB is not a unit of a size"),
    ("mem=0.3MiB", 4, "0.3MiB", NO, NO, ["REQ-QTX-020"], "not a whole number of MiB"),
    ("storage=100MiB", 8, "100MiB", NO, NO, ["REQ-QTX-020"], "not a whole number of GiB"),
    ("accel.mem>=1.5GiB", 11, "1.5GiB", NO, NO, ["REQ-QTX-020"], "accel.mem in whole GiB"),
    ("mem=1.0000000000000000000000000001GiB", 4, "1.0000000000000000000000000001GiB", NO, NO,
     ["REQ-QTX-020", "REQ-QTX-024"], "not a whole number of MiB when computed exactly"),
    ("for 3 parsecs", 4, "3", NO, NO, ["REQ-QTX-021"], "not a duration unit"),
    ("for", 3, "", NO, NO, ["REQ-QTX-021", "REQ-QTX-040"], "for without a duration"),
    ("for 3", 4, "3", NO, NO, ["REQ-QTX-021"], "a duration needs a unit"),
    ("for 1.5s", 4, "1.5s", NO, NO, ["REQ-QTX-021"], "not a whole number of seconds"),
    ('for "3h"', 4, '"3h"', NO, NO, ["REQ-QTX-021"], "a duration is never quoted"),
    ("for=3h", 3, "=", NO, NO, ["REQ-QTX-021"], "for takes no operator"),
    ("near=CN-TJ rtt<=3.5us", 16, "3.5us", NO, NO, ["REQ-QTX-022"],
     "not a whole number of microseconds"),
    ("near=CN-TJ rtt<=3", 16, "3", NO, NO, ["REQ-QTX-022"], "a time needs a unit"),
    ("near=CN-TJ rtt<=3min", 16, "3min", NO, NO, ["REQ-QTX-022"], "min is not a time unit"),
    ("near=CN-TJ rtt<=3ΜS", 16, "3ΜS", NO, NO, ["REQ-QTX-022"],
     "units ignore case in ASCII only: Greek capital mu is not µ"),
    ("currency=CNY price<=5/fortnight", 20, "5/fortnight", NO, NO, ["REQ-QTX-023"],
     "not a period"),
    ("currency=CNY price<=5/week", 20, "5/week", NO, NO, ["REQ-QTX-023"],
     "week is not a billing period"),
    ("currency=CNY price<=-1", 20, "-1", NO, NO, ["REQ-QTX-023"], "no sign"),
    ("renewable>=half", 11, "half", NO, NO, ["REQ-QTX-024"], "not a share"),
    ("renewable>=1e-1", 11, "1e-1", NO, NO, ["REQ-QTX-024"], "no exponents"),
    ("tflops.fp64>=1E3", 13, "1E3", NO, NO, ["REQ-QTX-024"], "no exponents"),
    ("tflops.fp64>=.5", 13, ".5", NO, NO, ["REQ-QTX-024"], "digits before the point"),
    ("tflops.fp64>=5.", 13, "5.", NO, NO, ["REQ-QTX-024"], "digits after the point"),
    ("tflops.fp64>=+5", 13, "+5", NO, NO, ["REQ-QTX-024"], "no sign"),
    ("weights=cost:1e2", 8, "cost:1e2", NO, NO, ["REQ-QTX-024"], "no exponents in a weight"),
    ("carbon<=400kg", 8, "400kg", NO, NO, ["REQ-QTX-010"], "carbon takes g/kWh only"),
    ("vcpu=one", 5, "one", NO, NO, ["REQ-QTX-010"], "not a whole number"),
    ("vcpu=1.5", 5, "1.5", NO, NO, ["REQ-QTX-010"], "not a whole number"),
    # 13.6: rules of section 7 (REQ-QTX-041, Table 13-2)
    ("order=cost", 0, "order", "currency", "currency_required", ["REQ-QTX-041"],
     "ranking by cost needs currency: at the order clause"),
    ("price<=1", 0, "price", "currency", "currency_required", ["REQ-QTX-041", "REQ-QTX-023"],
     "a price bound needs currency"),
    ("order=renewable price<=1", 16, "price", "currency", "currency_required", ["REQ-QTX-041"],
     "an order without cost does not need currency: at the price clause"),
    ("order=cost price<=1", 0, "order", "currency", "currency_required", ["REQ-QTX-041"],
     "the first clause that needs the currency"),
    ("currency=CNY total<=1", 13, "total", "duration_s", "duration_required", ["REQ-QTX-041"],
     "a total needs for"),
    ("order=latency", 0, "order", "near", "near_region_required", ["REQ-QTX-041"],
     "ranking by latency needs near=<region>"),
    ("near=jingjinji order=latency", 15, "order", "near", "near_region_required",
     ["REQ-QTX-041"], "a latency circle is not a region"),
    ("currency=CNY order=cost weights=renewable:1", 24, "weights", "weights.renewable",
     "weight_not_in_order", ["REQ-QTX-041"], "a weight for a key not in order"),
    ("region=CN-TJ region!=CN-TJ", 21, "CN-TJ", "region_not_in", "region_overlap",
     ["REQ-QTX-041"], "a region both in and not in"),
    ("arch=x86_64,x86_64", 5, "x86_64", "arch", "unique", ["REQ-QTX-041"],
     "a repeated element: at the first value of the clause"),
    ("sw=cuda sw.cuda>=12", 3, "cuda", "software", "unique", ["REQ-QTX-041"],
     "software names are distinct"),
    ("vcpu=0", 5, "0", "demand", "empty_demand", ["REQ-QTX-041"], "a demand of nothing"),
    ("vcpu>=2 mem=0GiB", 12, "0GiB", "demand", "empty_demand", ["REQ-QTX-041"],
     "the first clause that sets a member of demand"),
    ("renewable>=50.000000000000000000000000000001%", 11,
     "50.000000000000000000000000000001%", "renewable_share_min", "decimal_text",
     ["REQ-QTX-041", "REQ-QTX-024"], "computed exactly, more than 18 fractional digits"),
    ("currency=CNY price<=0.0000000000000000001", 20, "0.0000000000000000001",
     "unit_price_max", "decimal_text", ["REQ-QTX-041", "REQ-QTX-024"],
     "19 fractional digits: not a decimal of section 5.3"),
    ("currency=CNY total<=1." + "0" * 85 + "1 for 1h", 20, "1." + "0" * 85 + "1",
     "total_cost_max", "decimal_text", ["REQ-QTX-041", "REQ-QTX-024"],
     "never rounded: 86 fractional digits"),
    ("limit=0", 6, "0", "limit", NO, ["REQ-QTX-041"], "a range of section 7"),
    ("limit=1001", 6, "1001", "limit", NO, ["REQ-QTX-041"], "a range of section 7"),
    ("tflops.fp64>=0", 13, "0", "tflops_min.fp64", NO, ["REQ-QTX-041"], "a positive decimal"),
    ("renewable>=150%", 11, "150%", "renewable_share_min", NO, ["REQ-QTX-041"],
     "a share above 1"),
    ("carbon<=2001", 8, "2001", "carbon_g_per_kwh_max", NO, ["REQ-QTX-041"], "at most 2,000"),
    ("accel.count>=0", 13, "0", "accelerator.count_min", NO, ["REQ-QTX-041"], "at least 1"),
    ("units=1000001", 6, "1000001", "demand.units", NO, ["REQ-QTX-041"], "at most 1,000,000"),
    ("vcpu=9007199254740992", 5, "9007199254740992", "demand.vcpu", NO, ["REQ-QTX-041"],
     "above 2^53-1"),
    ("for 0s", 4, "0s", "duration_s", NO, ["REQ-QTX-041", "REQ-QTX-021"],
     "a duration of zero: at the number of for"),
    ('city=""', 5, '""', "city_in.0", NO, ["REQ-QTX-041", "REQ-QTX-003"],
     "an empty city: at the quoted string as written"),
    ("cursor=a+b", 7, "a+b", "cursor", NO, ["REQ-QTX-041"], "not a cursor"),
    # the counts and lengths of section 7
    ("accel.model=" + ",".join(f"m{i}" for i in range(1, 18)), 12, "m1", "accelerator.model", NO,
     ["REQ-QTX-041", "REQ-QTX-001"], "17 models: at most 16"),
    ("sw=" + ",".join(f"s{i}" for i in range(1, 18)), 3, "s1", "software", NO,
     ["REQ-QTX-041", "REQ-QTX-001"], "17 software constraints: at most 16"),
    ("compliance=" + ",".join(f"s{i}" for i in range(1, 18)), 11, "s1", "compliance", NO,
     ["REQ-QTX-041", "REQ-QTX-001"], "17 compliance tokens: at most 16"),
    ("region in " + ",".join(f"CN-{i:02d}" for i in range(1, 66)), 10, "CN-01", "region_in", NO,
     ["REQ-QTX-041", "REQ-QTX-001"], "65 regions: at most 64"),
    ("city=" + "a" * 257, 5, "a" * 257, "city_in.0", NO, ["REQ-QTX-041", "REQ-QTX-001"],
     "a city of 257 characters: at most 256"),
    ("cursor=" + "a" * 513, 7, "a" * 513, "cursor", NO, ["REQ-QTX-041", "REQ-QTX-001"],
     "a cursor of 513 characters: at most 512"),
]

# (query object, canonical text, note)
RENDER: list[tuple[dict[str, Any], str, str]] = [
    ({}, "", "the empty query is the empty text"),
    ({"limit": 1}, "limit=1", "a limit other than 10"),
    ({"city_in": ["in", "a b", 'x"y\\z', "天津", "for"]},
     'city in "in","a b","x\\"y\\\\z",天津,"for"', "quoted only where a word would not do"),
    ({"accelerator": {"vendor": "for", "model": ["not", "h20"], "family": "in"}},
     'accel.vendor="for" accel.model="not",h20 accel.family="in"',
     "the words in, not, for are quoted wherever they are values"),
    ({"software": [{"name": "ubuntu"}, {"name": "cuda", "version": ">=12,<13"}, {"name": "in"}]},
     'sw=ubuntu sw.cuda>=12,<13 sw="in"', "one clause per software element, in order"),
    ({"accelerator": {}}, "accel=any", "an empty accelerator constraint"),
    ({"accelerator": {"memory_gib_min": 0}, "memory_mib_min": 0, "storage_gib_min": 0},
     "accel.mem>=0GiB mem>=0MiB storage>=0GiB", "zero sizes in the member's own unit"),
    ({"memory_mib_min": 1_073_741_824, "storage_gib_min": 1025},
     "mem>=1PiB storage>=1025GiB", "the largest unit that divides the size"),
    ({"memory_mib_min": 1536}, "mem>=1536MiB", "1.5 GiB is written in MiB"),
    ({"duration_s": 1}, "for 1s", "seconds"),
    ({"duration_s": 5400}, "for 90min", "minutes"),
    ({"duration_s": 86_400}, "for 1d", "a day"),
    ({"duration_s": 604_800}, "for 1w", "a week"),
    ({"duration_s": 2_628_000}, "for 1mo", "a month"),
    ({"duration_s": 31_536_000}, "for 1y", "a year, not 12mo"),
    ({"duration_s": 7_884_000}, "for 3mo", "three months"),
    ({"near": {"region": "CN-TJ", "max_rtt_us": 1500}}, "near=CN-TJ rtt<=1500us", "microseconds"),
    ({"near": {"region": "CN-TJ", "max_rtt_us": 3000}}, "near=CN-TJ rtt<=3ms", "milliseconds"),
    ({"near": {"region": "CN-TJ", "max_rtt_us": 2_000_000}}, "near=CN-TJ rtt<=2s", "seconds"),
    ({"tflops_min": {"fp64": "9.7", "bf16": "312", "fp16": "1.5"}},
     "tflops.bf16>=312 tflops.fp16>=1.5 tflops.fp64>=9.7", "precisions in code-point order"),
    ({**CNY, "order": ["renewable", "cost"], "weights": {"renewable": "0.5", "cost": "2"}},
     "currency=CNY order=renewable,cost weights=cost:2,renewable:0.5",
     "weights in code-point order of the key"),
    ({**CNY, "unit_price_max": "7", "unit_price_per": "month"}, "currency=CNY price<=7/month",
     "a price with its period"),
    ({DEMAND: {"vcpu": 0, "memory_mib": 2048, "storage_gib": 0, "accelerators": 2, "nodes": 0,
               "units": 0}}, "mem=2GiB accel.count=2", "only the demands that are not zero"),
    ({"within": ".", "region_in": ["CN-TJ"], "region_not_in": ["CN-HE"], "country_in": ["CN"]},
     "within=. region in CN-TJ region not in CN-HE country in CN", "region, country with in"),
    ({"cursor": "abc", "limit": 5, "units_free_min": 1, "compliance": ["iso27001"],
      "carbon_g_per_kwh_max": 300, "renewable_share_min": "0.25", "near": {"latency_circle": "jjj"},
      "arch": ["aarch64"], "class": "intelligent", "vcpu_min": 8, DEMAND: {"units": 2, "nodes": 1},
      "accelerator": {"count_min": 8, "vendor": "nvidia"}, "duration_s": 3600,
      "city_in": ["天津"], "currency": "CNY", "total_cost_max": "100", "unit_price_max": "1",
      "order": ["cost", "availability"]},
     "class=intelligent arch=aarch64 accel.vendor=nvidia accel.count>=8 vcpu>=8 nodes=1 units=2 "
     "for 1h city in 天津 near=jjj currency=CNY price<=1 total<=100 renewable>=0.25 carbon<=300 "
     "compliance=iso27001 free>=1 order=cost,availability limit=5 cursor=abc",
     "the order of the clauses"),
]
# fmt: on


def _query(members: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = validate(Query, members).to_value()
    return value


def _syntax(text: str) -> QuerySyntaxError:
    try:
        parse(text)
    except QuerySyntaxError as e:
        return e
    raise AssertionError(f"{text[:60]!r} parses")


def build() -> dict[str, Any]:
    valid = []
    for text, members, reqs, note in VALID:
        want = _query(members)
        got = parse(text).to_value()
        assert got == want, (text[:60], got, want)
        canonical = to_text(parse(text))
        assert parse(canonical).to_value() == want, (text[:60], canonical)
        valid.append(
            {"note": note, "reqs": reqs, "text": text, "query": want, "canonical": canonical}
        )
    invalid = []
    seen = set()
    for text, offset, token, field, rule, reqs, note in INVALID:
        assert text not in seen, text
        seen.add(text)
        err = _syntax(text)
        assert err.code == 1005 and err.name == "QUERY_SYNTAX", (text, err)
        d = err.detail
        got = (d["offset"], d["token"], d.get("field"), d.get("rule") if rule else None)
        assert got == (offset, token, field, rule), (text[:60], got)
        assert d.get("expected"), text
        case: dict[str, Any] = {
            "note": note,
            "reqs": reqs,
            "text": text,
            "code": 1005,
            "name": "QUERY_SYNTAX",
            "offset": offset,
            "token": token,
        }
        if field is not None:
            case["field"] = field
            case["rule"] = rule
        invalid.append(case)
    rendered = []
    for members, canonical, note in RENDER:
        query = validate(Query, members)
        assert to_text(query) == canonical, (note, to_text(query), canonical)
        assert parse(canonical) == query, note
        rendered.append(
            {
                "note": note,
                "reqs": ["REQ-QTX-030", "REQ-QTX-031"],
                "query": query.to_value(),
                "canonical": canonical,
            }
        )
    return {
        "version": 1,
        "description": (
            "Test vectors of spec section 13, the textual query language. valid: text -> "
            "the query object of section 7 it compiles to (with every default written), and its "
            "canonical text (13.5). invalid: text -> QUERY_SYNTAX (1005) with detail.offset (in "
            "code points) and detail.token (as written) of the offending token, and for a rule "
            "of section 7 detail.field and detail.rule (rule null: a rule with no registered "
            "token, any will do; field may also name an element of, or the member enclosing, "
            "the one given). render: query object -> canonical text. Each invalid text has "
            "exactly one fault. Generated by gen_query_text.py."
        ),
        "valid": valid,
        "invalid": invalid,
        "render": rendered,
    }


def _escape_invisible(text: str) -> str:
    """JSON text with every non-printable character escaped, so the file shows what it holds."""
    out = []
    for ch in text:
        if ch != "\n" and not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def render() -> str:
    """The file's exact text: UTF-8 JSON, two-space indent, trailing newline."""
    return _escape_invisible(json.dumps(build(), ensure_ascii=False, indent=2)) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
