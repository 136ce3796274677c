"""The exception tree every genoshare API maps to a GA4GH-shaped error body.

::

    GenoshareError                 status_code, message
     ├── InvalidInput       400    malformed request or file
     ├── NotFound           404    unknown dataset, object, id
     ├── Conflict           409    the thing exists already in another shape
     ├── Unauthenticated    401    missing, expired or wrongly signed credentials
     ├── PermissionDenied   403    valid credentials without the right grant
     └── BadGateway         502    a service the node relies on (a passport broker) failed to answer

Services raise these, never ``HTTPException``; ``genoshare.api.errors`` turns them into the body that the
standard of the calling path expects (DRS ``{msg, status_code}``, htsget ``{htsget: {error, message}}``,
Beacon ``{meta, error: {errorCode, errorMessage}}``).  Protocol packages subclass them where a standard
names its own errors (htsget's ``InvalidRange``, ``UnsupportedFormat``).
"""

from __future__ import annotations


class GenoshareError(Exception):
    status_code = 500
    #: The error's name in the htsget vocabulary, reused as a short code by the other APIs.
    code = "InternalError"
    #: Set where a denial was already written to the audit log, so the API does not log it a second time.
    audited = False
    #: ``(action, resource, details)`` the API's refusal log writes this denial under (else its own names).
    audit_as: tuple[str, str, dict[str, object]] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(GenoshareError):
    status_code = 400
    code = "InvalidInput"


class NotFound(GenoshareError):
    status_code = 404
    code = "NotFound"


class Conflict(GenoshareError):
    status_code = 409
    code = "Conflict"


class Unauthenticated(GenoshareError):
    status_code = 401
    code = "InvalidAuthentication"


class PermissionDenied(GenoshareError):
    status_code = 403
    code = "PermissionDenied"


class Unavailable(GenoshareError):
    """Not the caller's fault and not for good: the node cannot give this answer now (its stewards are told)."""

    status_code = 503
    code = "ServiceUnavailable"


class BadGateway(GenoshareError):
    """Not the caller's fault: an upstream the node must ask (a passport broker) did not answer usefully."""

    status_code = 502
    code = "BadGateway"
