"""htsget's error vocabulary as exceptions, so one web handler can render any of them.

Each class carries the HTTP status and the ``error`` name of the htsget 1.3 error table.  They subclass
the matching ``genoshare.errors`` classes, so the node's single handler (``genoshare.api.errors``) renders
them as ``{"htsget": {"error": code, "message": message}}`` with ``status_code`` -- and an access denial
raised by ``genoshare.access`` (a plain ``genoshare.errors.PermissionDenied``) reaches an htsget client in
the same shape.  ``http_status``/``htsget_error`` are the engine's older names for the same two values.

::

    GenoshareError
     └── HtsgetError
          ├── InvalidAuthentication  401  (also an Unauthenticated)
          ├── PermissionDenied       403  (also a genoshare PermissionDenied)
          ├── NotFound               404  (also a genoshare NotFound)
          ├── PayloadTooLarge        413  (also an InvalidInput)
          ├── UnsupportedFormat      400  (also an InvalidInput)
          ├── InvalidRange           400  (also an InvalidInput)
          └── InvalidInput           400  (also a genoshare InvalidInput)
               └── CorruptFile       400  a data or index file that does not parse
"""

from __future__ import annotations

from genoshare import errors as base


class HtsgetError(base.GenoshareError):
    status_code = 500
    code = "InternalError"

    @property
    def http_status(self) -> int:
        return self.status_code

    @property
    def htsget_error(self) -> str:
        return self.code


class InvalidAuthentication(HtsgetError, base.Unauthenticated):
    status_code = 401
    code = "InvalidAuthentication"


class PermissionDenied(HtsgetError, base.PermissionDenied):
    status_code = 403
    code = "PermissionDenied"


class NotFound(HtsgetError, base.NotFound):
    status_code = 404
    code = "NotFound"


class PayloadTooLarge(HtsgetError, base.InvalidInput):
    status_code = 413
    code = "PayloadTooLarge"


class UnsupportedFormat(HtsgetError, base.InvalidInput):
    status_code = 400
    code = "UnsupportedFormat"


class InvalidInput(HtsgetError, base.InvalidInput):
    status_code = 400
    code = "InvalidInput"


class InvalidRange(HtsgetError, base.InvalidInput):
    status_code = 400
    code = "InvalidRange"


class CorruptFile(InvalidInput):
    """A data or index file that does not parse.

    Kept apart from request errors so a server can log it loudly (it is the operator's problem, not the
    client's) while still answering with the spec's ``InvalidInput``.
    """
