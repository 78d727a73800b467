"""One place that sorts Azure Storage failures into copier's taxonomy (rclone's shouldRetry).

Used by both Azure targets for SDK exceptions and for the fast path's raw HTTP answers.
Messages carry the operation, the redacted target and the status/error code, never the SDK's
own message (it may quote request URLs) and never a chained SDK exception.
"""

from __future__ import annotations

import socket
import ssl
import http.client

from copier.errors import AuthenticationFailed, CopierError, NameNotAllowed, PermanentError, TransientError

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRY_CODES = frozenset({"ServerBusy", "OperationTimedOut", "InternalError", "IngressOverAccountLimit",
                         "EgressOverAccountLimit", "TooManyRequests"})
AUTH_CODES = frozenset({"AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch",
                        "AuthorizationResourceTypeMismatch", "AuthorizationServiceMismatch",
                        "AuthorizationSourceIPMismatch", "AuthorizationProtocolMismatch",
                        "InvalidAuthenticationInfo", "NoAuthenticationInformation",
                        "KeyBasedAuthenticationNotPermitted"})
NAME_CODES = frozenset({"InvalidResourceName", "InvalidFileOrDirectoryPathName", "InvalidUri"})

# Low-level failures of the fast path's own connections.
NETWORK_ERRORS = (OSError, http.client.HTTPException, socket.timeout, ssl.SSLError)


def classify(status: int, code: str | None, what: str) -> CopierError:
    """The error for an HTTP answer ``status`` with ``x-ms-error-code`` ``code``."""
    code = code or ""
    label = f"{what}: {status} {code}".rstrip()
    if status in RETRY_STATUS or code in RETRY_CODES:
        return TransientError(label)
    if status == 401 or code in AUTH_CODES:
        return AuthenticationFailed(label)
    if code in NAME_CODES:
        return NameNotAllowed(label)
    if status == 403:
        return AuthenticationFailed(label)
    return PermanentError(label)


def status_and_code(exc: BaseException) -> tuple[int | None, str | None]:
    """Status and error code of an azure.core HttpResponseError (None, None otherwise)."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None)
    response = getattr(exc, "response", None)
    if code is None and response is not None:
        try:
            code = response.headers.get("x-ms-error-code")
        except Exception:  # noqa: BLE001 - best effort on a foreign object
            code = None
    code = getattr(code, "value", code)  # the SDK hands a StorageErrorCode enum
    return status, (str(code) if code is not None else None)


def translate(exc: BaseException, what: str) -> CopierError:
    """Translate anything raised by the azure SDK (or the network) into a CopierError."""
    if isinstance(exc, CopierError):
        return exc
    from azure.core import exceptions as az

    if isinstance(exc, az.ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        return AuthenticationFailed(f"{what}: credentials refused ({type(exc).__name__})")
    if isinstance(exc, az.HttpResponseError):
        status, code = status_and_code(exc)
        if status is None:
            return TransientError(f"{what}: no answer ({type(exc).__name__})")
        return classify(status, code, what)
    if isinstance(exc, (az.ServiceRequestError, az.ServiceResponseError, az.IncompleteReadError)):
        return TransientError(f"{what}: connection failed ({type(exc).__name__})")
    if isinstance(exc, az.AzureError):
        return PermanentError(f"{what}: {type(exc).__name__}")
    if isinstance(exc, NETWORK_ERRORS):
        return TransientError(f"{what}: connection failed ({type(exc).__name__})")
    try:  # azure-identity raises its own errors when no credential works
        from azure.identity import CredentialUnavailableError
    except ImportError:  # pragma: no cover
        CredentialUnavailableError = ()  # type: ignore[assignment]
    if isinstance(exc, CredentialUnavailableError):
        return AuthenticationFailed(f"{what}: no usable Azure credential ({type(exc).__name__})")
    return PermanentError(f"{what}: {type(exc).__name__}")
