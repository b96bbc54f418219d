"""Errors of the web service, in the GA4GH htsget JSON shape with the spec's status codes.

`{"htsget": {"error": NAME, "message": TEXT}}`: NAME is one of the spec's error names, or one of
the few this service adds for what the spec does not name (405, 429, 500), mapped to its HTTP
status by `STATUS`. Messages never carry token material, paths or what a principal may not know.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

STATUS = {
    "InvalidAuthentication": 401,
    "PermissionDenied": 403,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "PayloadTooLarge": 413,
    "TooManyRequests": 429,
    "UnsupportedFormat": 400,
    "InvalidInput": 400,
    "InvalidRange": 400,
    "InternalError": 500,
}
#: every response of the service, errors included, must not be stored by a cache or browser
NO_STORE = {"Cache-Control": "no-store"}


class HtsgetError(Exception):
    """A refusal the service answers with: htsget error name and a one-line message."""

    def __init__(self, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return STATUS.get(self.error, 400)


def error_response(e: HtsgetError) -> JSONResponse:
    return JSONResponse(
        {"htsget": {"error": e.error, "message": str(e)}},
        status_code=e.status,
        media_type="application/json",
        headers={**NO_STORE, **e.headers},
    )
