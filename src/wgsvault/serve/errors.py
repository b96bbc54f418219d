"""Errors of the web service, in the GA4GH htsget JSON shape with the spec's status codes.

`{"htsget": {"error": NAME, "message": TEXT}}`: NAME is one of the spec's error names, mapped to
its HTTP status by `STATUS`.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

STATUS = {
    "InvalidAuthentication": 401,
    "PermissionDenied": 403,
    "NotFound": 404,
    "PayloadTooLarge": 413,
    "UnsupportedFormat": 400,
    "InvalidInput": 400,
    "InvalidRange": 400,
}


class HtsgetError(Exception):
    """A refusal the service answers with: htsget error name and a one-line message."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error

    @property
    def status(self) -> int:
        return STATUS.get(self.error, 400)


def error_response(e: HtsgetError) -> JSONResponse:
    return JSONResponse(
        {"htsget": {"error": e.error, "message": str(e)}},
        status_code=e.status,
        media_type="application/json",
    )
