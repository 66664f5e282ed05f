"""Canonical codecs: the cid data model in JSON and in msgpack.

Theory of operation
-------------------
Every cid object (record, envelope, message) is a value of one small data model
([REQ-ENC-001]): ``null``, booleans, integers in the I-JSON safe range
``[-(2**53-1), 2**53-1]``, Unicode strings, arrays and maps with unique string
keys. There are no floats anywhere in cid ([REQ-ENC-002]): fractional
quantities (prices, shares, TFLOPS) are decimal strings, timestamps are integer
seconds. Without floats, RFC 8785 (JCS) canonical JSON reduces to: object
members sorted by the UTF-16 code units of their names, no insignificant white
space, and the ECMAScript string escaping, which is what :func:`encode_json`
produces ([REQ-ENC-003]). The canonical msgpack form ([REQ-ENC-004]) is the
same tree with maps in the same key order, integers in their shortest
encoding, strings as ``str`` (never ``bin``), and no ``ext`` or ``float`` types.

Decoding is the trust boundary. ``decode_json``/``decode_msgpack`` take any
bytes and return a data-model value or raise a :class:`~cid.errors.DecodeError`
subclass, nothing else ([REQ-ENC-010]). Limits are enforced before the bulk
allocation where the format allows it ([REQ-ENC-011]):

* total size is checked first, on the raw bytes;
* msgpack: string, binary, array and map lengths are bounded inside the C
  unpacker (``max_*_len``) before it allocates them, and nesting by its fixed
  parse stack; the exact depth limit is checked by the walk that follows;
* JSON: the total-size cap bounds what the parser can allocate; nesting past
  the interpreter's recursion guard fails inside the parser; depth, element
  counts and string lengths are then checked exactly by one walk.

Duplicate map keys are refused in both encodings ([REQ-ENC-012]): a signature
over canonical bytes is meaningless if two parsers can see different values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import msgpack

from .errors import DecodeError, LimitExceededError, NonCanonicalError

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_SAFE_INTEGER",
    "Encoding",
    "Limits",
    "Scan",
    "Value",
    "canonical_json_scanned",
    "canonical_msgpack_scanned",
    "canonicalize",
    "decode",
    "decode_json",
    "decode_msgpack",
    "decode_scanned",
    "encode",
    "encode_json",
    "encode_msgpack",
    "media_type",
]

Value: TypeAlias = Any
"""A value of the cid data model (None, bool, int, str, list, dict[str, Value])."""

Encoding = Literal["json", "msgpack"]

MAX_SAFE_INTEGER: Final = 2**53 - 1

_MEDIA_TYPES: Final[dict[str, str]] = {
    "json": "application/cid+json",
    "msgpack": "application/cid+msgpack",
}


@dataclass(frozen=True, slots=True)
class Scan:
    """What a decoder's walk learned about a value, so that encoders can skip work.

    ``plain``: no map key has a character above U+FFFF (code-point order is
    UTF-16 order). ``ordered``: additionally every map's keys arrived in
    canonical order, so the value can be encoded without sorting.
    """

    plain: bool
    ordered: bool


def media_type(encoding: Encoding) -> str:
    """The registered media type of an encoding ([REQ-ENC-020])."""
    return _MEDIA_TYPES[encoding]


@dataclass(frozen=True, slots=True)
class Limits:
    """Decoder limits ([REQ-ENC-011]). Defaults suit one record or message."""

    max_bytes: int = 256 * 1024
    max_depth: int = 16
    max_string: int = 8 * 1024
    max_array: int = 4096
    max_map: int = 512

    def scaled(self, *, max_bytes: int, max_array: int | None = None) -> Limits:
        """A copy for bigger documents (feed pages, snapshots) with the same per-item rules."""
        return Limits(
            max_bytes=max_bytes,
            max_depth=self.max_depth,
            max_string=self.max_string,
            max_array=max_array if max_array is not None else self.max_array,
            max_map=self.max_map,
        )


DEFAULT_LIMITS: Final = Limits()


# --- the data model ---------------------------------------------------------------

_NO_LIMITS: Final = Limits(
    max_bytes=2**62, max_depth=64, max_string=2**62, max_array=2**62, max_map=2**62
)


def _scan(value: Value, limits: Limits) -> bool:
    """Check ``value`` is in the data model and within ``limits`` ([REQ-ENC-001], [REQ-ENC-011]).

    One iterative walk (no recursion, so no RecursionError on hostile input).
    Returns True when every map key is free of characters above U+FFFF, i.e.
    when code-point order and the UTF-16 order of RFC 8785 agree for all keys.

    Raises:
        NonCanonicalError: floats, out-of-range integers, types outside the model.
        LimitExceededError: depth, string, array or map limits.
        DecodeError: non-string map keys, lone surrogates.
    """
    max_depth = limits.max_depth
    max_string = limits.max_string
    max_array = limits.max_array
    max_map = limits.max_map
    plain = True
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        v, depth = pop()
        t = type(v)
        if t is str:
            if len(v) > max_string:
                raise LimitExceededError(
                    f"string of {len(v)} characters, limit {max_string}",
                    detail={"rule": "max_string"},
                )
            if not v.isascii():
                _check_text(v)
        elif t is dict:
            if depth > max_depth:
                raise LimitExceededError(
                    f"nesting deeper than {max_depth}", detail={"rule": "max_depth"}
                )
            if len(v) > max_map:
                raise LimitExceededError(
                    f"map of {len(v)} entries, limit {max_map}", detail={"rule": "max_map"}
                )
            for k, item in v.items():
                if type(k) is not str:
                    raise DecodeError("map keys must be strings", detail={"rule": "string_keys"})
                if len(k) > max_string:
                    raise LimitExceededError("map key too long", detail={"rule": "max_string"})
                if not k.isascii():
                    _check_text(k)
                    if plain and max(k) > "\uffff":
                        plain = False
                if type(item) is not str or not item.isascii():
                    push((item, depth + 1))
        elif t is int:
            if not -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
                raise NonCanonicalError(
                    "integer outside the I-JSON safe range", detail={"rule": "safe_integer"}
                )
        elif t is list or t is tuple:
            if depth > max_depth:
                raise LimitExceededError(
                    f"nesting deeper than {max_depth}", detail={"rule": "max_depth"}
                )
            if len(v) > max_array:
                raise LimitExceededError(
                    f"array of {len(v)} items, limit {max_array}", detail={"rule": "max_array"}
                )
            for item in v:
                push((item, depth + 1))
        elif v is None or t is bool:
            pass
        elif t is float:
            raise NonCanonicalError(
                "floats are not part of the cid data model", detail={"rule": "no_float"}
            )
        else:
            raise NonCanonicalError(
                f"type {t.__name__} is not part of the cid data model", detail={"rule": "type"}
            )
    return plain


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DecodeError("string holds a lone surrogate", detail={"rule": "utf8"}) from e


# --- canonical form -------------------------------------------------------------


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be")


def _sorted_copy(value: Value, utf16: bool) -> Value:
    """``value`` with every map's members in canonical order (value already scanned)."""
    t = type(value)
    if t is dict:
        keys = sorted(value, key=_utf16_key) if utf16 else sorted(value)
        return {k: _sorted_copy(value[k], utf16) for k in keys}
    if t is list or t is tuple:
        return [_sorted_copy(v, utf16) for v in value]
    return value


def canonicalize(value: Value) -> Value:
    """Check ``value`` is in the data model and return it with every map key-sorted.

    Raises:
        NonCanonicalError: a float, an out-of-range integer, or a type outside the data model.
        DecodeError: a non-string key or a lone surrogate.
    """
    plain = _scan(value, _NO_LIMITS)
    return _sorted_copy(value, not plain)


_JSON_SORTED: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=True
)
_JSON_AS_IS: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=False
)


def _json_dumps(value: Value, *, sort_keys: bool) -> bytes:
    # encoders built once: json.dumps with options builds a new one per call
    return (_JSON_SORTED if sort_keys else _JSON_AS_IS).encode(value).encode("utf-8")


def encode_json(value: Value) -> bytes:
    """Canonical JSON (RFC 8785 for the float-free cid data model), UTF-8 ([REQ-ENC-003])."""
    if _scan(value, _NO_LIMITS):
        # code-point order == UTF-16 order here, so the C encoder can sort
        return _json_dumps(value, sort_keys=True)
    return _json_dumps(_sorted_copy(value, True), sort_keys=False)


def encode_msgpack(value: Value) -> bytes:
    """Canonical msgpack ([REQ-ENC-004])."""
    plain = _scan(value, _NO_LIMITS)
    out: bytes = msgpack.packb(_sorted_copy(value, not plain), use_bin_type=True)
    return out


def encode(value: Value, encoding: Encoding) -> bytes:
    """Canonical bytes of ``value`` in ``encoding``."""
    if encoding == "json":
        return encode_json(value)
    if encoding == "msgpack":
        return encode_msgpack(value)
    raise DecodeError(f"unknown encoding {encoding!r}")


# --- decoding ---------------------------------------------------------------------
#
# Both decoders ask their C parser to build every map as a tuple of (key, value)
# pairs (``object_pairs_hook=tuple``: no Python call per map). Arrays come back
# as lists, so an empty map ``()`` and an empty array ``[]`` stay distinct.
# One walk then turns the pair tuples into dicts - refusing duplicate keys
# ([REQ-ENC-012]) - and checks the data model and the limits on the way.


def _bad_leaf(v: Any, max_string: int) -> None:
    """Raise the right error for a leaf the fast paths did not accept."""
    t = type(v)
    if t is str:
        if len(v) > max_string:
            raise LimitExceededError(
                f"string of {len(v)} characters, limit {max_string}", detail={"rule": "max_string"}
            )
        if not v.isascii():
            _check_text(v)
        return
    if t is int:
        if not -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
            raise NonCanonicalError(
                "integer outside the I-JSON safe range", detail={"rule": "safe_integer"}
            )
        return
    if v is None or t is bool:
        return
    if t is float:
        raise NonCanonicalError(
            "floats are not part of the cid data model", detail={"rule": "no_float"}
        )
    raise DecodeError(
        f"type {t.__name__} is not part of the cid data model", detail={"rule": "type"}
    )


def _convert(parsed: Any, limits: Limits) -> tuple[Value, Scan]:
    """Turn pair tuples into dicts and check the data model and limits in one walk."""
    max_depth = limits.max_depth
    max_string = limits.max_string
    max_array = limits.max_array
    max_map = limits.max_map
    lo, hi = -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER
    plain = True
    ordered = True

    def too_deep() -> LimitExceededError:
        return LimitExceededError(f"nesting deeper than {max_depth}", detail={"rule": "max_depth"})

    def convert_map(pairs: tuple[tuple[Any, Any], ...], depth: int) -> dict[str, Any]:
        nonlocal plain, ordered
        if depth > max_depth:
            raise too_deep()
        if len(pairs) > max_map:
            raise LimitExceededError(
                f"map of {len(pairs)} entries, limit {max_map}", detail={"rule": "max_map"}
            )
        out: dict[str, Any] = {}
        prev = ""
        for k, item in pairs:
            if type(k) is not str:
                raise DecodeError("map keys must be strings", detail={"rule": "string_keys"})
            if ordered:
                # keys already in canonical order let encoders skip sorting (valid while plain)
                if prev and k <= prev:
                    ordered = False
                prev = k
            if not k.isascii() or len(k) > max_string:
                _bad_leaf(k, max_string)
                if plain and max(k) > "\uffff":
                    plain = False
            t = type(item)
            if t is str:
                if not item.isascii() or len(item) > max_string:
                    _bad_leaf(item, max_string)
            elif t is tuple:
                out[k] = convert_map(item, depth + 1)
                continue
            elif t is int:
                if not lo <= item <= hi:
                    _bad_leaf(item, max_string)
            elif t is list:
                out[k] = convert_array(item, depth + 1)
                continue
            elif item is not None and t is not bool:
                _bad_leaf(item, max_string)
            out[k] = item
        if len(out) != len(pairs):
            raise DecodeError("duplicate map key", detail={"rule": "unique_keys"})
        return out

    def convert_array(items: list[Any], depth: int) -> list[Any]:
        if depth > max_depth:
            raise too_deep()
        if len(items) > max_array:
            raise LimitExceededError(
                f"array of {len(items)} items, limit {max_array}", detail={"rule": "max_array"}
            )
        for i, item in enumerate(items):
            t = type(item)
            if t is tuple:
                items[i] = convert_map(item, depth + 1)
            elif t is list:
                items[i] = convert_array(item, depth + 1)
            elif t is str:
                if not item.isascii() or len(item) > max_string:
                    _bad_leaf(item, max_string)
            else:
                _bad_leaf(item, max_string)
        return items

    t = type(parsed)
    if t is tuple:
        value: Value = convert_map(parsed, 1)
    elif t is list:
        value = convert_array(parsed, 1)
    else:
        _bad_leaf(parsed, max_string)
        value = parsed
    return value, Scan(plain, plain and ordered)


def _reject_constant(name: str) -> Any:
    raise NonCanonicalError(
        f"{name} is not part of the cid data model", detail={"rule": "no_float"}
    )


def _reject_float(text: str) -> Any:
    raise NonCanonicalError(
        "floats are not part of the cid data model", detail={"rule": "no_float"}
    )


def _check_size(data: object, limits: Limits) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("input must be bytes", detail={"rule": "bytes"})
    raw = bytes(data)
    if len(raw) > limits.max_bytes:
        raise LimitExceededError(
            f"input of {len(raw)} bytes, limit {limits.max_bytes}",
            detail={"rule": "max_bytes", "limit": limits.max_bytes},
        )
    return raw


def decode_json(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Value:
    """Decode JSON bytes into a data-model value, or raise a ``DecodeError``.

    The input must be UTF-8 ([REQ-ENC-013]); it need not be canonical (use
    :func:`decode` with ``require_canonical=True`` where it must be).
    """
    return _decode_json(data, limits)[0]


def _decode_json(data: bytes, limits: Limits) -> tuple[Value, Scan]:
    raw = _check_size(data, limits)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError("JSON text is not valid UTF-8", detail={"rule": "utf8"}) from e
    try:
        parsed = json.loads(
            text,
            object_pairs_hook=tuple,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
        )
    except DecodeError:
        raise
    except RecursionError as e:
        # the C scanner's recursion guard: nesting far beyond any limit
        raise LimitExceededError("nesting too deep", detail={"rule": "max_depth"}) from e
    except ValueError as e:
        if "integer string conversion" in str(e):
            raise NonCanonicalError(
                "integer outside the I-JSON safe range", detail={"rule": "safe_integer"}
            ) from e
        raise DecodeError(f"not valid JSON: {e}", detail={"rule": "syntax"}) from e
    return _convert(parsed, limits)


# --- msgpack decoding -------------------------------------------------------------


def decode_msgpack(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Value:
    """Decode msgpack bytes into a data-model value, or raise a ``DecodeError``."""
    return _decode_msgpack(data, limits)[0]


def _decode_msgpack(data: bytes, limits: Limits) -> tuple[Value, Scan]:
    raw = _check_size(data, limits)
    try:
        parsed = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            use_list=True,
            object_pairs_hook=tuple,
            max_str_len=min(limits.max_string * 4, limits.max_bytes),
            max_bin_len=limits.max_bytes,
            max_array_len=limits.max_array,
            max_map_len=limits.max_map,
            max_ext_len=limits.max_bytes,
        )
    except msgpack.StackError as e:
        raise LimitExceededError("nesting too deep", detail={"rule": "max_depth"}) from e
    except UnicodeDecodeError as e:
        raise DecodeError("msgpack string is not valid UTF-8", detail={"rule": "utf8"}) from e
    except ValueError as e:
        # msgpack reports limit breaches and malformed data as ValueError subclasses
        text = str(e)
        if "map key" in text:
            raise DecodeError("map keys must be strings", detail={"rule": "string_keys"}) from e
        if "exceeds max" in text:
            raise LimitExceededError(f"msgpack limit: {text}", detail={"rule": "length"}) from e
        raise DecodeError(f"not valid msgpack: {text}", detail={"rule": "syntax"}) from e
    except (msgpack.ExtraData, msgpack.FormatError) as e:
        raise DecodeError(f"not valid msgpack: {e}", detail={"rule": "syntax"}) from e
    except (TypeError, RecursionError, OverflowError) as e:
        raise DecodeError(f"not valid msgpack: {e}", detail={"rule": "syntax"}) from e
    return _convert(parsed, limits)


def decode(
    data: bytes,
    encoding: Encoding,
    limits: Limits = DEFAULT_LIMITS,
    *,
    require_canonical: bool = False,
) -> Value:
    """Decode ``data``; ``require_canonical`` also refuses non-canonical bytes ([REQ-ENC-014])."""
    return decode_scanned(data, encoding, limits, require_canonical=require_canonical)[0]


def decode_scanned(
    data: bytes,
    encoding: Encoding,
    limits: Limits = DEFAULT_LIMITS,
    *,
    require_canonical: bool = False,
) -> tuple[Value, Scan]:
    """:func:`decode`, also returning the scan's verdict for the ``*_scanned`` encoders."""
    if encoding == "json":
        value, scan = _decode_json(data, limits)
    elif encoding == "msgpack":
        value, scan = _decode_msgpack(data, limits)
    else:
        raise DecodeError(f"unknown encoding {encoding!r}")
    if require_canonical and encode(value, encoding) != bytes(data):
        raise NonCanonicalError(f"{encoding} bytes are not in canonical form")
    return value, scan


def canonical_json_scanned(value: Value, scan: Scan) -> bytes:
    """Canonical JSON of a value that a decoder already scanned (skips the second walk).

    ``scan`` must be the verdict :func:`decode_scanned` returned for a value that
    contains ``value``.
    """
    if scan.ordered:
        return _json_dumps(value, sort_keys=False)  # maps already in canonical order
    if scan.plain:
        return _json_dumps(value, sort_keys=True)
    return _json_dumps(_sorted_copy(value, True), sort_keys=False)


def canonical_msgpack_scanned(value: Value, scan: Scan) -> bytes:
    """Canonical msgpack of an already scanned value; no copy when its maps are in order."""
    if scan.ordered:
        out: bytes = msgpack.packb(value, use_bin_type=True)
        return out
    out = msgpack.packb(_sorted_copy(value, not scan.plain), use_bin_type=True)
    return out
