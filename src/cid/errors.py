"""One exception tree for cid, rooted at :class:`CidError`.

Every class carries the stable numeric ``code``, symbolic ``name``, HTTP
``status`` and ``retryable`` flag of its row in the error-code registry of the
specification (``spec/10-errors.md``, [REQ-ERR-001]..). An exception and the
wire error object are the same thing: :meth:`CidError.to_wire` and
:func:`from_wire` round-trip ([REQ-ERR-003]).

The tree is split by kind of failure, as python-tuf and h11 do:

* :class:`DecodeError` and subclasses: bytes or text that cannot become a model;
* :class:`VerificationError` and subclasses: signatures, keys, validity, serials;
* :class:`ResolutionError`: names that cannot be resolved;
* :class:`NegotiationError`, :class:`InvocationError`: the two later verbs;
* :class:`ServiceError`: what a server or transport says about itself.

Foreign exceptions are wrapped at the boundary (``raise DecodeError(...) from e``)
so that callers only ever have to catch :class:`CidError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "AgreementExpiredError",
    "AgreementNotFoundError",
    "AlgorithmUnsupportedError",
    "CapacityExhaustedError",
    "ChainBrokenError",
    "CidError",
    "DecodeError",
    "DemandRejectedError",
    "ExpiredError",
    "HeadMismatchError",
    "IdempotencyConflictError",
    "IdentifierError",
    "IllegalTransitionError",
    "InternalError",
    "InvocationError",
    "KeyNotAuthorisedError",
    "KeyRevokedError",
    "KeyUnknownError",
    "LimitExceededError",
    "MethodNotAllowedError",
    "NegotiationError",
    "NonCanonicalError",
    "NotAcceptableError",
    "NotFoundError",
    "NotYetValidError",
    "PayloadTooLargeError",
    "PriceAboveLimitError",
    "QueryBudgetExceededError",
    "QuerySyntaxError",
    "QueryTooExpensiveError",
    "QuoteExpiredError",
    "RateLimitedError",
    "ReceiptInvalidError",
    "ReferralDepthExceededError",
    "ReferralLoopError",
    "ReplayError",
    "RequestTimeoutError",
    "ResolutionError",
    "SchemaError",
    "SerialRollbackError",
    "ServiceError",
    "SignatureInvalidError",
    "TaskLimitsExceededError",
    "TaskNotFoundError",
    "TaskStateConflictError",
    "UnavailableError",
    "UnsupportedMediaTypeError",
    "VerificationError",
    "VoucherInvalidError",
    "error_class_for_code",
    "error_registry",
    "from_wire",
]


class CidError(Exception):
    """Root of every error cid raises on purpose.

    Attributes:
        code: stable numeric code from the spec's registry.
        name: stable symbolic name (``UPPER_SNAKE``) from the same registry.
        status: HTTP status a server answers with.
        retryable: whether the same request may succeed later unchanged.
        message: human-readable text; not stable, never parsed.
        field: dotted path of the offending field or token, when there is one.
        detail: extra machine-readable facts (small, JSON-compatible).
    """

    code: ClassVar[int] = 0
    name: ClassVar[str] = "ERROR"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail: dict[str, Any] = dict(detail or {})

    def __str__(self) -> str:
        where = f" (at {self.field})" if self.field else ""
        return f"{self.name}[{self.code}]: {self.message}{where}"

    def to_wire(self) -> dict[str, Any]:
        """The wire error object of spec section 10 ([REQ-ERR-002])."""
        obj: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.field is not None:
            obj["field"] = self.field
        if self.detail:
            obj["detail"] = self.detail
        return obj


# --- decode / parse ---------------------------------------------------------


class DecodeError(CidError):
    """Bytes or text that are not a well-formed cid object."""

    code = 1000
    name = "MALFORMED"
    status = 400


class IdentifierError(DecodeError):
    """A compute identifier that breaks the syntax of spec section 2."""

    code = 1001
    name = "IDENTIFIER_INVALID"


class LimitExceededError(DecodeError):
    """Input over a decoder limit (depth, string, array or map length)."""

    code = 1002
    name = "LIMIT_EXCEEDED"


class SchemaError(DecodeError):
    """A value that breaks a model rule; ``field`` names the field, ``detail['rule']`` the rule."""

    code = 1003
    name = "SCHEMA_VIOLATION"
    status = 422


class NonCanonicalError(DecodeError):
    """Bytes that decode but are not in the canonical form the context requires."""

    code = 1004
    name = "NON_CANONICAL"


class QuerySyntaxError(DecodeError):
    """A textual query that does not parse; ``detail`` has ``offset`` and ``token``."""

    code = 1005
    name = "QUERY_SYNTAX"


# --- verification -----------------------------------------------------------


class VerificationError(CidError):
    """A signed object that must not be trusted."""

    code = 2000
    name = "VERIFICATION_FAILED"
    status = 403


class SignatureInvalidError(VerificationError):
    code = 2001
    name = "SIGNATURE_INVALID"


class KeyUnknownError(VerificationError):
    code = 2002
    name = "KEY_UNKNOWN"


class KeyNotAuthorisedError(VerificationError):
    code = 2003
    name = "KEY_NOT_AUTHORISED"


class ExpiredError(VerificationError):
    code = 2004
    name = "EXPIRED"


class NotYetValidError(VerificationError):
    code = 2005
    name = "NOT_YET_VALID"


class SerialRollbackError(VerificationError):
    code = 2006
    name = "SERIAL_ROLLBACK"
    status = 409


class AlgorithmUnsupportedError(VerificationError):
    code = 2007
    name = "ALGORITHM_UNSUPPORTED"
    status = 400


class KeyRevokedError(VerificationError):
    code = 2008
    name = "KEY_REVOKED"


class ChainBrokenError(VerificationError):
    code = 2009
    name = "CHAIN_BROKEN"


class HeadMismatchError(VerificationError):
    """A feed page or snapshot whose signed head does not match its content."""

    code = 2010
    name = "HEAD_MISMATCH"
    status = 502


# --- resolution -------------------------------------------------------------


class ResolutionError(CidError):
    code = 3000
    name = "RESOLUTION_FAILED"
    status = 502


class NotFoundError(ResolutionError):
    code = 3001
    name = "NOT_FOUND"
    status = 404


class ReferralLoopError(ResolutionError):
    code = 3002
    name = "REFERRAL_LOOP"


class ReferralDepthExceededError(ResolutionError):
    code = 3003
    name = "REFERRAL_DEPTH_EXCEEDED"


class QueryBudgetExceededError(ResolutionError):
    code = 3004
    name = "QUERY_BUDGET_EXCEEDED"


# --- negotiation ------------------------------------------------------------


class NegotiationError(CidError):
    code = 4000
    name = "NEGOTIATION_FAILED"
    status = 409


class QuoteExpiredError(NegotiationError):
    code = 4001
    name = "QUOTE_EXPIRED"
    status = 410


class CapacityExhaustedError(NegotiationError):
    code = 4002
    name = "CAPACITY_EXHAUSTED"
    status = 409
    retryable = True


class IllegalTransitionError(NegotiationError):
    code = 4003
    name = "ILLEGAL_TRANSITION"
    status = 409


class PriceAboveLimitError(NegotiationError):
    code = 4004
    name = "PRICE_ABOVE_LIMIT"
    status = 422


class AgreementNotFoundError(NegotiationError):
    code = 4005
    name = "AGREEMENT_NOT_FOUND"
    status = 404


class DemandRejectedError(NegotiationError):
    code = 4006
    name = "DEMAND_REJECTED"
    status = 422


class IdempotencyConflictError(NegotiationError):
    code = 4007
    name = "IDEMPOTENCY_CONFLICT"
    status = 409


class AgreementExpiredError(NegotiationError):
    code = 4008
    name = "AGREEMENT_EXPIRED"
    status = 410


class VoucherInvalidError(NegotiationError):
    code = 4009
    name = "VOUCHER_INVALID"
    status = 422


# --- invocation -------------------------------------------------------------


class InvocationError(CidError):
    code = 5000
    name = "INVOCATION_FAILED"
    status = 409


class ReplayError(InvocationError):
    code = 5001
    name = "REPLAY_DETECTED"
    status = 409


class TaskNotFoundError(InvocationError):
    code = 5002
    name = "TASK_NOT_FOUND"
    status = 404


class TaskLimitsExceededError(InvocationError):
    code = 5003
    name = "TASK_LIMITS_EXCEEDED"
    status = 422


class TaskStateConflictError(InvocationError):
    code = 5004
    name = "TASK_STATE_CONFLICT"
    status = 409


class ReceiptInvalidError(InvocationError):
    code = 5005
    name = "RECEIPT_INVALID"
    status = 422


# --- service / transport ----------------------------------------------------


class ServiceError(CidError):
    code = 6000
    name = "SERVICE_ERROR"
    status = 500


class RateLimitedError(ServiceError):
    code = 6001
    name = "RATE_LIMITED"
    status = 429
    retryable = True


class PayloadTooLargeError(ServiceError):
    code = 6002
    name = "PAYLOAD_TOO_LARGE"
    status = 413


class InternalError(ServiceError):
    code = 6003
    name = "INTERNAL"
    status = 500
    retryable = True


class UnavailableError(ServiceError):
    code = 6004
    name = "UNAVAILABLE"
    status = 503
    retryable = True


class QueryTooExpensiveError(ServiceError):
    code = 6005
    name = "QUERY_TOO_EXPENSIVE"
    status = 422


class NotAcceptableError(ServiceError):
    code = 6006
    name = "NOT_ACCEPTABLE"
    status = 406


class UnsupportedMediaTypeError(ServiceError):
    code = 6007
    name = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class MethodNotAllowedError(ServiceError):
    code = 6008
    name = "METHOD_NOT_ALLOWED"
    status = 405


class RequestTimeoutError(ServiceError):
    code = 6009
    name = "TIMEOUT"
    status = 504
    retryable = True


def _all_subclasses(cls: type[CidError]) -> list[type[CidError]]:
    out: list[type[CidError]] = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


def error_registry() -> dict[int, type[CidError]]:
    """Map every registered code to its class. Codes are unique ([REQ-ERR-001])."""
    table: dict[int, type[CidError]] = {}
    for cls in _all_subclasses(CidError):
        if cls.code in table and table[cls.code] is not cls:
            raise AssertionError(f"duplicate error code {cls.code}")
        table[cls.code] = cls
    return table


_REGISTRY = error_registry()


def error_class_for_code(code: int) -> type[CidError]:
    """The class registered for ``code``, or that of its range (2xxx → VerificationError)."""
    cls = _REGISTRY.get(code)
    if cls is not None:
        return cls
    # REQ-ERR-004: an unknown code is understood by its thousand-range.
    return _REGISTRY.get((code // 1000) * 1000, CidError)


def from_wire(obj: object) -> CidError:
    """Rebuild the exception for a wire error object ([REQ-ERR-003]).

    Anything that is not a well-formed error object becomes a :class:`DecodeError`
    describing that, never another exception type.
    """
    if not isinstance(obj, Mapping):
        return DecodeError("error object is not a map")
    code = obj.get("code")
    message = obj.get("message", "")
    field = obj.get("field")
    detail = obj.get("detail")
    if not isinstance(code, int) or isinstance(code, bool):
        return DecodeError("error object has no integer code")
    if not isinstance(message, str):
        message = str(message)
    if field is not None and not isinstance(field, str):
        field = None
    if not isinstance(detail, Mapping):
        detail = None
    cls = error_class_for_code(code)
    err = cls(message, field=field, detail=detail)
    if cls.code != code:
        # keep the unknown code visible to the caller
        err.detail.setdefault("wire_code", code)
        wire_name = obj.get("name")
        if isinstance(wire_name, str):
            err.detail.setdefault("wire_name", wire_name)
    return err
