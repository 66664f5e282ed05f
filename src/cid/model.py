"""The base of every wire model, and the scalar types shared by them.

Policy ([REQ-REC-002], [REQ-ENC-006]):

* models are frozen; field names are spelled as the spec spells them;
* unknown fields are refused (``extra="forbid"``); extensions go in an ``ext``
  map whose keys are namespaced tokens (``vendor.key``), so that an unknown
  field is always a mistake and never silently dropped from what was signed;
* money and every other fractional quantity is a canonical decimal string,
  :class:`decimal.Decimal` in Python, never a float;
* a pydantic ``ValidationError`` never escapes: :func:`validate` turns it into
  a :class:`~cid.errors.SchemaError` naming the field and the rule.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)

from .errors import AlgorithmUnsupportedError, SchemaError

__all__ = [
    "CanonicalDecimal",
    "Extensions",
    "Token",
    "UInt",
    "WireModel",
    "decimal_to_text",
    "validate",
]

_WIDE: Final = Context(prec=80)
_DECIMAL_TEXT: Final = re.compile(r"-?(?:0|[1-9][0-9]{0,27})(?:\.[0-9]{0,17}[1-9])?")
MAX_UINT: Final = 2**53 - 1


def decimal_to_text(value: Decimal) -> str:
    """The canonical text of a decimal ([REQ-ENC-007]): no exponent, no trailing zeros, no "-0"."""
    if not value.is_finite():
        raise ValueError("decimal must be finite")
    text = format(value.normalize(_WIDE), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("decimal must be finite [non_finite]")
        text = decimal_to_text(value)
        if not _DECIMAL_TEXT.fullmatch(text):
            raise ValueError(f"{text[:48]!r} has too many digits [decimal_text]")
        return Decimal(text)
    if isinstance(value, str):
        # REQ-ENC-007: only the canonical text form is accepted on the wire.
        if len(value) > 48 or not _DECIMAL_TEXT.fullmatch(value) or value == "-0":
            raise ValueError(f"{value[:48]!r} is not a canonical decimal string [decimal_text]")
        try:
            return Decimal(value)
        except InvalidOperation as e:  # pragma: no cover - the regex admits only valid text
            raise ValueError("not a decimal [decimal_text]") from e
    raise ValueError("decimals are strings on the wire, never numbers [decimal_type]")


CanonicalDecimal = Annotated[
    Decimal,
    BeforeValidator(_parse_decimal),
    PlainSerializer(decimal_to_text, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^" + _DECIMAL_TEXT.pattern + "$",
            "description": "canonical decimal string (spec 5.3)",
        }
    ),
]
"""A ``Decimal`` carried as its canonical decimal string."""

UInt = Annotated[int, Field(ge=0, le=MAX_UINT, strict=True)]
"""A non-negative integer within the I-JSON safe range."""

Token = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._+-]*$", strict=True),
]
"""A lower-case vocabulary token (vendor, model, software name, compliance tag...)."""

Extensions = Annotated[
    dict[
        Annotated[str, Field(pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$", max_length=64)],
        Any,
    ],
    Field(max_length=32),
]
"""Namespaced extension members (``vendor.key``); values are any data-model value."""


class WireModel(BaseModel):
    """Frozen, strict, closed: the base of every cid wire model."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        use_enum_values=True,
        ser_json_timedelta="float",
        hide_input_in_errors=True,
    )

    def to_value(self) -> dict[str, Any]:
        """This model as a data-model value (the input of the canonical codecs)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], value: Any, *, where: str = "") -> M:
    """Validate ``value`` as ``model``; failures are :class:`SchemaError` naming field and rule."""
    try:
        return model.model_validate(value)
    except ValidationError as e:
        first = e.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        field = f"{where}.{loc}" if where and loc else (where or loc or None)
        msg = first["msg"]
        rule = first["type"]
        if rule == "literal_error" and first["loc"] and first["loc"][-1] == "alg":
            raise AlgorithmUnsupportedError(
                f"{model.__name__}: unsupported algorithm", field=field, detail={"rule": "alg"}
            ) from e
        bracket = re.search(r"\[([A-Za-z0-9_]+)\]", msg)
        if bracket:
            rule = bracket.group(1)
        raise SchemaError(
            f"{model.__name__}: {msg}",
            field=field,
            detail={"rule": rule, "errors": e.error_count()},
        ) from e
