"""Compute identifiers: hierarchical, delegable names (spec section 2, ADR-0001).

An :class:`Identifier` names a piece of compute the way a DNS name names a host:
``a100.tianjin.ctyun``, ``池1.天津.天翼云``. Labels are written most specific
first; the root, the registry operator's namespace, is written ``.``.

Theory of operation
-------------------

Parsing ([REQ-ID-001]..[REQ-ID-016]) runs the cheapest checks first, so that
hostile input is refused before any Unicode work is done:

1. the input must be a ``str`` (NOT_TEXT, [REQ-ID-006]) of at most 1024 code
   points (INPUT_TOO_LONG, [REQ-ID-012]);
2. one optional ``cid:`` prefix is removed, case-insensitively ([REQ-ID-005]);
   nothing may be left empty (EMPTY, [REQ-ID-003]);
3. U+3002, U+FF0E and U+FF61 become ``.`` ([REQ-ID-004]), ``.`` alone is the
   root, and the text is split on ``.``; an empty label (leading, trailing or
   doubled dot) is EMPTY_LABEL ([REQ-ID-002]) and more than 32 labels is
   TOO_MANY_LABELS ([REQ-ID-013]);
4. each label is normalised ([REQ-ID-007]..[REQ-ID-011]): IDNA 2008 with the
   UTS #46 non-transitional mapping - ``idna.encode(label, uts46=True,
   transitional=False)`` gives the A-label, ``idna.decode`` of that gives the
   canonical U-label. A label that is lower-case LDH ASCII after A-Z -> a-z
   (and not ``??--``) is its own U-label and A-label, so it skips ``idna``
   ([REQ-ID-010]: "MUST give the same result as the full processing"); a
   whole name of such labels is recognised by one regular expression.
   Everything else goes through ``idna`` (behind a small LRU cache), and any
   exception from it becomes INVALID_LABEL, LABEL_TOO_LONG ([REQ-ID-014]) or
   EMPTY_LABEL ([REQ-ID-009]);
5. the ASCII form must fit in 253 octets (NAME_TOO_LONG, [REQ-ID-015]).

An :class:`Identifier` keeps two tuples: the canonical U-labels (equality and
hashing, [REQ-ID-021]) and the A-labels (``to_ascii`` and the canonical order
of [REQ-ID-022], which is DNSSEC's: compare from the root down, label by label,
as octet strings, so an ancestor sorts before its descendants). For an all-ASCII
name the two tuples are the same object.

Hierarchy ([REQ-ID-023]..[REQ-ID-026]) is always label-wise: ``ctyunx`` is not
within ``ctyun``. :meth:`Identifier.closest_enclosing` finds the zone cut that
is authoritative for a name, in O(depth) when handed a set.

This module is pure: no I/O, no asyncio. Only :class:`~cid.errors.IdentifierError`
ever escapes parsing; foreign exceptions are wrapped at the ``idna`` boundary.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, NoReturn, final

import idna

from .errors import IdentifierError

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

__all__ = [
    "MAX_INPUT_CHARS",
    "MAX_LABELS",
    "MAX_LABEL_OCTETS",
    "MAX_NAME_OCTETS",
    "URI_SCHEME",
    "Identifier",
    "Reason",
]

MAX_INPUT_CHARS: Final = 1024
"""Longest raw input, in code points, including any ``cid:`` prefix ([REQ-ID-012])."""

MAX_LABELS: Final = 32
"""Most labels an identifier may have ([REQ-ID-013])."""

MAX_LABEL_OCTETS: Final = 63
"""Longest label, in octets of its A-label ([REQ-ID-014])."""

MAX_NAME_OCTETS: Final = 253
"""Longest identifier, in octets of its ASCII form ([REQ-ID-015])."""

URI_SCHEME: Final = "cid"
"""The URI scheme of the URI form ([REQ-ID-005])."""


class Reason:
    """The stable ``detail["reason"]`` tokens of :class:`IdentifierError` ([REQ-ID-019]).

    The first eight come from parsing; the last two from hierarchy operations.
    """

    EMPTY: Final = "EMPTY"
    EMPTY_LABEL: Final = "EMPTY_LABEL"
    LABEL_TOO_LONG: Final = "LABEL_TOO_LONG"
    NAME_TOO_LONG: Final = "NAME_TOO_LONG"
    TOO_MANY_LABELS: Final = "TOO_MANY_LABELS"
    INVALID_LABEL: Final = "INVALID_LABEL"
    INPUT_TOO_LONG: Final = "INPUT_TOO_LONG"
    NOT_TEXT: Final = "NOT_TEXT"
    NO_PARENT: Final = "NO_PARENT"
    NOT_WITHIN: Final = "NOT_WITHIN"


# REQ-ID-004: "A parser MUST treat ... U+3002 ... U+FF0E ... U+FF61 exactly as U+002E".
_SEPARATORS: Final = frozenset("\u3002\uff0e\uff61.")
_TO_DOT: Final = str.maketrans(dict.fromkeys("\u3002\uff0e\uff61", "."))

# REQ-ID-010: lower-case LDH, 1..63 octets. Always used with fullmatch (a "$"
# would also match before a trailing newline).
_LDH: Final = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_LDH_LABEL: Final = re.compile(_LDH)
# A whole name of 1..32 such labels, none with "--" in positions 3 and 4.
_LDH_NAME: Final = re.compile(
    rf"(?![a-z0-9-]{{2}}--){_LDH}(?:\.(?![a-z0-9-]{{2}}--){_LDH}){{0,{MAX_LABELS - 1}}}"
)

_CACHE_SIZE: Final = 1024


def _error(reason: str, message: str, **extra: object) -> IdentifierError:
    return IdentifierError(message, detail={"reason": reason, **extra})


def _idna_reason(exc: BaseException) -> str:
    """Map an exception from ``idna`` to a reason token.

    Recent idna releases tag their errors with a stable ``code``; older ones
    only have the message, whose wording has not changed for these cases.
    """
    code = getattr(exc, "code", None)
    if code is None:
        text = str(exc).lower()
        if "too long" in text:
            return Reason.LABEL_TOO_LONG
        if "empty" in text:
            return Reason.EMPTY_LABEL
        return Reason.INVALID_LABEL
    if code in ("label_too_long", "domain_too_long", "input_too_long"):
        # REQ-ID-014: a label (after mapping) too long to be a DNS label.
        return Reason.LABEL_TOO_LONG
    if code in ("empty_label", "empty_domain"):
        # REQ-ID-009: the label mapped to nothing (only ignored code points).
        return Reason.EMPTY_LABEL
    return Reason.INVALID_LABEL


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _idna_label(label: str) -> tuple[bool, str, str]:
    """Normalise one label through ``idna``.

    Returns ``(True, u_label, a_label)`` or ``(False, reason, why)``: failures
    are returned rather than raised so that the (bounded) cache keeps them too.
    """
    # REQ-ID-007: "normalised and validated as IDNA 2008 with the Unicode IDNA
    # Compatibility Processing mapping applied first, with Transitional_Processing
    # false (non-transitional)".
    # Every exception is wrapped: whatever idna does, parsing raises only
    # IdentifierError (STYLE 3). A broken idna install fails every vector test.
    try:
        a_bytes = idna.encode(label, uts46=True, transitional=False)
    except Exception as e:
        return False, _idna_reason(e), str(e)
    if b"." in a_bytes:
        # The UTS #46 mapping turned something into a separator; a label
        # cannot contain one.
        return False, Reason.INVALID_LABEL, "label contains a separator"
    a_label = a_bytes.decode("ascii")
    try:
        # REQ-ID-008, REQ-ID-016: the canonical U-label is the decoded A-label.
        u_label = idna.decode(a_label)
    except Exception as e:  # pragma: no cover - idna decodes what it encoded
        return False, Reason.INVALID_LABEL, str(e)
    return True, u_label, a_label


def _normalise_label(label: str, index: int) -> tuple[str, str]:
    """The ``(u_label, a_label)`` of one non-empty input label, or raise."""
    if label.isascii():
        low = label.lower()
        # REQ-ID-010: a label that "after mapping the ASCII letters A-Z to a-z,
        # consists of 1 to 63 of the characters a-z, 0-9 and -, neither begins
        # nor ends with -, and does not have -- in its third and fourth
        # positions ... is its own canonical U-label and A-label".
        if low[2:4] != "--" and _LDH_LABEL.fullmatch(low) is not None:
            return low, low
    ok, first, second = _idna_label(label)
    if ok:
        return first, second
    raise _error(first, f"label {index} is not valid: {second}", label_index=index)


def _too_many(count: int) -> IdentifierError:
    # REQ-ID-013: "An identifier MUST NOT have more than 32 labels."
    return _error(
        Reason.TOO_MANY_LABELS,
        f"more than {MAX_LABELS} labels",
        labels=count,
        limit=MAX_LABELS,
    )


def _check_name_length(a_labels: tuple[str, ...]) -> None:
    _check_name_octets(sum(map(len, a_labels)) + len(a_labels) - 1)


def _check_name_octets(octets: int) -> None:
    # REQ-ID-015: "the ASCII form ... MUST NOT exceed 253 octets".
    if octets > MAX_NAME_OCTETS:
        raise _error(
            Reason.NAME_TOO_LONG,
            f"name is {octets} octets in ASCII form, over {MAX_NAME_OCTETS}",
            octets=octets,
            limit=MAX_NAME_OCTETS,
        )


def _check_label_input(label: object, index: int) -> str:
    """Checks that parsing does by splitting, for a label given on its own."""
    if not isinstance(label, str):
        raise _error(
            Reason.NOT_TEXT, f"label {index} is {type(label).__name__}, not str", label_index=index
        )
    if len(label) > MAX_INPUT_CHARS:
        raise _error(
            Reason.INPUT_TOO_LONG,
            f"label {index} is longer than {MAX_INPUT_CHARS} characters",
            label_index=index,
        )
    if not label:
        raise _error(Reason.EMPTY_LABEL, f"label {index} is empty", label_index=index)
    if not _SEPARATORS.isdisjoint(label):
        raise _error(Reason.INVALID_LABEL, f"label {index} contains a separator", label_index=index)
    return label


@final
class Identifier:
    """A compute identifier: an immutable, hashable, totally ordered sequence of labels.

    ``Identifier(text)`` is the same as :meth:`Identifier.parse`. Equality is on
    the canonical labels ([REQ-ID-021]); ``<`` is the canonical order of
    [REQ-ID-022] (root first, then by A-label octets, ancestors before
    descendants). An identifier never equals a ``str``.
    """

    __slots__ = ("_alabels", "_labels")

    _labels: tuple[str, ...]
    _alabels: tuple[str, ...]

    def __new__(cls, text: str) -> Identifier:
        """Parse ``text``; see :meth:`parse`."""
        return cls.parse(text)

    @classmethod
    def _make(cls, labels: tuple[str, ...], alabels: tuple[str, ...]) -> Identifier:
        obj = object.__new__(cls)
        object.__setattr__(obj, "_labels", labels)
        object.__setattr__(obj, "_alabels", alabels)
        return obj

    @classmethod
    def _from_parts(cls, parts: list[str] | tuple[str, ...]) -> Identifier:
        ulabels: list[str] = []
        alabels: list[str] = []
        distinct = False
        for index, part in enumerate(parts):
            u, a = _normalise_label(part, index)
            ulabels.append(u)
            alabels.append(a)
            distinct = distinct or u is not a
        a_tuple = tuple(alabels)
        _check_name_length(a_tuple)
        return cls._make(tuple(ulabels) if distinct else a_tuple, a_tuple)

    # --- construction --------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Identifier:
        """Parse the text or URI form of an identifier into its canonical form.

        Accepts U-labels or A-labels in any case, the separators ``.`` U+3002
        U+FF0E U+FF61, and one optional ``cid:`` prefix (any case).

        Args:
            text: the identifier as text, e.g. ``"A100.Tianjin.ctyun"``,
                ``"cid:池1。天津。天翼云"`` or ``"."`` for the root.

        Returns:
            The identifier.

        Raises:
            IdentifierError: ``detail["reason"]`` is one of EMPTY, EMPTY_LABEL,
                LABEL_TOO_LONG, NAME_TOO_LONG, TOO_MANY_LABELS, INVALID_LABEL,
                INPUT_TOO_LONG, NOT_TEXT; label faults also carry ``label_index``
                (0 = most specific). Nothing else is ever raised.
        """
        value: object = text
        # REQ-ID-006: only text is an identifier.
        if not isinstance(value, str):
            raise _error(Reason.NOT_TEXT, f"identifier must be str, not {type(value).__name__}")
        # REQ-ID-012: refuse oversized input before any other processing.
        if len(value) > MAX_INPUT_CHARS:
            raise _error(
                Reason.INPUT_TOO_LONG,
                f"input is longer than {MAX_INPUT_CHARS} characters",
                limit=MAX_INPUT_CHARS,
            )
        # REQ-ID-005: one optional "cid:" prefix, case-insensitive. (Only ASCII
        # letters lower-case to "c", "i" or "d", so str.lower is exact here.)
        if value[3:4] == ":" and value[:3].lower() == URI_SCHEME:
            value = value[4:]
        # REQ-ID-003: "A parser MUST reject empty input, and input that is only
        # the URI prefix".
        if not value:
            raise _error(Reason.EMPTY, "identifier is empty")
        if value.isascii():
            # REQ-ID-010: the common case, a name of lower-case LDH labels after
            # A-Z -> a-z, is canonical as it stands: no per-label work at all.
            low = value.lower()
            if _LDH_NAME.fullmatch(low) is not None:
                _check_name_octets(len(low))
                labels = tuple(low.split("."))
                return cls._make(labels, labels)
        else:
            # REQ-ID-004: the ideographic and fullwidth full stops are separators.
            value = value.translate(_TO_DOT)
        # REQ-ID-002: the root is written ".".
        if value == ".":
            return _ROOT
        parts = value.split(".")
        # REQ-ID-002: "MUST NOT contain an empty label" (this also refuses a
        # leading or trailing dot: there is one canonical form).
        for index, part in enumerate(parts):
            if not part:
                raise _error(Reason.EMPTY_LABEL, f"label {index} is empty", label_index=index)
        if len(parts) > MAX_LABELS:
            raise _too_many(len(parts))
        return cls._from_parts(parts)

    @classmethod
    def root(cls) -> Identifier:
        """The root identifier ``.``: the registry operator's namespace ([REQ-ID-024])."""
        return _ROOT

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> Identifier:
        """Build an identifier from labels, most specific first; each is normalised.

        ``from_labels([])`` is the root. A label must not contain a separator.

        Raises:
            IdentifierError: as :meth:`parse`; NOT_TEXT also when ``labels`` is a
                ``str`` or not iterable.
        """
        value: object = labels
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise _error(Reason.NOT_TEXT, "labels must be an iterable of str")
        items = tuple(islice(value, MAX_LABELS + 1))
        if len(items) > MAX_LABELS:
            raise _too_many(len(items))
        if not items:
            return _ROOT
        checked = [_check_label_input(label, index) for index, label in enumerate(items)]
        return cls._from_parts(checked)

    # --- conversions -------------------------------------------------------------

    def to_text(self) -> str:
        """The canonical text form: U-labels joined by ``.``; the root is ``.`` ([REQ-ID-016])."""
        return ".".join(self._labels) if self._labels else "."

    def to_ascii(self) -> str:
        """The ASCII form: A-labels joined by ``.``; the root is ``.`` ([REQ-ID-016])."""
        return ".".join(self._alabels) if self._alabels else "."

    def to_uri(self) -> str:
        """The URI form ``cid:`` + canonical text ([REQ-ID-005]).

        It is an IRI when the name has non-ASCII labels; ``"cid:" + to_ascii()``
        is the plain-URI spelling of the same identifier.
        """
        return f"{URI_SCHEME}:{self.to_text()}"

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"Identifier({self.to_text()!r})"

    # --- properties ----------------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        """The canonical U-labels, most specific first; ``()`` for the root."""
        return self._labels

    @property
    def depth(self) -> int:
        """The number of labels; 0 for the root."""
        return len(self._labels)

    @property
    def is_root(self) -> bool:
        """Whether this is the root identifier ``.``."""
        return not self._labels

    # --- hierarchy -----------------------------------------------------------

    def parent(self) -> Identifier:
        """This identifier without its most specific label.

        Raises:
            IdentifierError: reason NO_PARENT for the root.
        """
        if not self._labels:
            raise _error(Reason.NO_PARENT, "the root has no parent")
        return Identifier._make(self._labels[1:], self._alabels[1:])

    def child(self, label: str) -> Identifier:
        """The identifier one level below this one, with ``label`` as its new first label.

        The label is normalised like any other and the limits apply.

        Raises:
            IdentifierError: as :meth:`parse`, with ``label_index`` 0.
        """
        checked = _check_label_input(label, 0)
        if len(self._labels) >= MAX_LABELS:
            raise _too_many(len(self._labels) + 1)
        u, a = _normalise_label(checked, 0)
        alabels = (a, *self._alabels)
        _check_name_length(alabels)
        if u is a and self._labels is self._alabels:
            return Identifier._make(alabels, alabels)
        return Identifier._make((u, *self._labels), alabels)

    def is_within(self, namespace: Identifier) -> bool:
        """Whether this identifier equals ``namespace`` or lies below it ([REQ-ID-023]).

        Label-wise, never by string suffix: ``ctyunx`` is not within ``ctyun``.
        Every identifier is within the root.
        """
        n = len(namespace._labels)
        mine = self._labels
        return n <= len(mine) and mine[len(mine) - n :] == namespace._labels

    def is_strictly_within(self, namespace: Identifier) -> bool:
        """Whether this identifier lies below ``namespace`` and is not equal to it."""
        return len(self._labels) > len(namespace._labels) and self.is_within(namespace)

    def ancestors(self) -> tuple[Identifier, ...]:
        """This identifier, its parent, ..., the root: ``depth + 1`` identifiers."""
        out = [self]
        out.extend(
            Identifier._make(self._labels[i:], self._alabels[i:])
            for i in range(1, len(self._labels) + 1)
        )
        return tuple(out)

    def relativize(self, origin: Identifier) -> tuple[str, ...]:
        """The labels of this identifier below ``origin``, most specific first.

        ``parse("a.b.c").relativize(parse("c")) == ("a", "b")``; relative to
        itself an identifier is ``()``.

        Raises:
            IdentifierError: reason NOT_WITHIN when this is not within ``origin``.
        """
        if not self.is_within(origin):
            raise _error(Reason.NOT_WITHIN, f"{self} is not within {origin}")
        return self._labels[: len(self._labels) - len(origin._labels)]

    def closest_enclosing(self, candidates: Iterable[Identifier]) -> Identifier | None:
        """The zone cut for this identifier: the deepest candidate it is within ([REQ-ID-025]).

        A candidate equal to this identifier counts. With a set (any
        ``collections.abc.Set``) the lookup walks this identifier's ancestors,
        O(depth); any other iterable is scanned once.

        Returns:
            The deepest enclosing candidate, or ``None`` when none encloses this.
        """
        if isinstance(candidates, AbstractSet):
            for ancestor in self.ancestors():
                if ancestor in candidates:
                    return ancestor
            return None
        best: Identifier | None = None
        for candidate in candidates:
            if self.is_within(candidate) and (best is None or candidate.depth > best.depth):
                best = candidate
        return best

    def common_ancestor(self, other: Identifier) -> Identifier:
        """The deepest identifier that both this and ``other`` are within (at least the root)."""
        mine, theirs = self._labels, other._labels
        common = 0
        for a, b in zip(reversed(mine), reversed(theirs), strict=False):
            if a != b:
                break
            common += 1
        start = len(mine) - common
        return Identifier._make(mine[start:], self._alabels[start:])

    # --- value semantics ------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identifier):
            return NotImplemented
        return self._labels == other._labels

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Identifier):
            return NotImplemented
        return self._labels != other._labels

    def __hash__(self) -> int:
        return hash(self._labels)

    # REQ-ID-022: root first, label by label, each as its A-label's octets (the
    # A-labels are lower-case ASCII, so str order is octet order).
    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Identifier):
            return NotImplemented
        return self._alabels[::-1] < other._alabels[::-1]

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Identifier):
            return NotImplemented
        return self._alabels[::-1] <= other._alabels[::-1]

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Identifier):
            return NotImplemented
        return self._alabels[::-1] > other._alabels[::-1]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Identifier):
            return NotImplemented
        return self._alabels[::-1] >= other._alabels[::-1]

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Identifier is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Identifier is immutable")

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Identifier.parse, (self.to_text(),))

    def __copy__(self) -> Identifier:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Identifier:
        return self

    # --- pydantic v2 ---------------------------------------------------------

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        """Validate from ``str`` (or accept an :class:`Identifier`); serialise to canonical text.

        A rejected identifier surfaces as a ``ValueError`` whose message starts
        with the reason token in brackets, e.g. ``[INVALID_LABEL] label 0 ...``;
        its ``__cause__`` is the :class:`~cid.errors.IdentifierError`.
        """
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            _pydantic_validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _pydantic_serialize,
                info_arg=False,
                return_schema=core_schema.str_schema(),
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """A JSON Schema string; inputs may be up to 1024 characters, canonical text up to 253."""
        serialization = handler.mode == "serialization"
        return {
            "type": "string",
            "maxLength": MAX_NAME_OCTETS if serialization else MAX_INPUT_CHARS,
            "description": (
                "cid compute identifier (spec section 2): labels separated by '.', "
                "most specific first; '.' is the root"
                + (
                    "; canonical text form."
                    if serialization
                    else "; an optional 'cid:' prefix and any case are accepted."
                )
            ),
        }


def _pydantic_validate(value: Any) -> Identifier:
    if isinstance(value, Identifier):
        return value
    try:
        return Identifier.parse(value)
    except IdentifierError as e:
        raise ValueError(f"[{e.detail['reason']}] {e.message}") from e


def _pydantic_serialize(value: Any) -> str:
    return value.to_text() if isinstance(value, Identifier) else str(value)


_ROOT: Final = Identifier._make((), ())
