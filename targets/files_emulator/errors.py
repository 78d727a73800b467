"""The service's error answers: status, error code and the message the real service sends."""

from __future__ import annotations

_MESSAGES = {
    "AuthenticationFailed": "Server failed to authenticate the request. Make sure the value of "
    "Authorization header is formed correctly including the signature.",
    "AuthorizationPermissionMismatch": "This request is not authorized to perform this operation "
    "using this permission.",
    "DirectoryNotEmpty": "The specified directory is not empty.",
    "InvalidFileOrDirectoryPathName": "The specified path is too long or contains invalid characters.",
    "InvalidHeaderValue": "The value for one of the HTTP headers is not in the correct format.",
    "InvalidInput": "One of the request inputs is not valid.",
    "InvalidMarker": "The specified marker is invalid.",
    "InvalidQueryParameterValue": "Value for one of the query parameters specified in the request URI is invalid.",
    "InvalidRange": "The range specified is invalid for the current size of the resource.",
    "InvalidResourceName": "The specifed resource name contains invalid characters.",
    "InvalidUri": "The requested URI does not represent any resource on the server.",
    "Md5Mismatch": "The MD5 value specified in the request did not match with the MD5 value "
    "calculated by the server.",
    "MissingRequiredHeader": "An HTTP header that's mandatory for this request is not specified.",
    "NoAuthenticationInformation": "Server failed to authenticate the request. Please refer to the "
    "information in the www-authenticate header.",
    "ParentNotFound": "The specified parent path does not exist.",
    "RequestBodyTooLarge": "The request body is too large and exceeds the maximum permissible limit.",
    "ResourceAlreadyExists": "The specified resource already exists.",
    "ResourceNotFound": "The specified resource does not exist.",
    "ResourceTypeMismatch": "The specified resource type does not match the type of the resource.",
    "ShareAlreadyExists": "The specified share already exists.",
    "ShareNotFound": "The specified share does not exist.",
    "UnsupportedHttpVerb": "The resource doesn't support the specified HTTP verb.",
}

_STATUS = {
    "AuthenticationFailed": 403,
    "AuthorizationPermissionMismatch": 403,
    "DirectoryNotEmpty": 409,
    "NoAuthenticationInformation": 401,
    "ParentNotFound": 404,
    "RequestBodyTooLarge": 413,
    "ResourceAlreadyExists": 409,
    "ResourceNotFound": 404,
    "ResourceTypeMismatch": 409,
    "ShareAlreadyExists": 409,
    "ShareNotFound": 404,
    "InvalidRange": 416,
    "UnsupportedHttpVerb": 405,
}


class ServiceError(Exception):
    """An error answer of the service; `headers` go on the response next to x-ms-error-code."""

    def __init__(self, code: str, status: int | None = None, detail: str = "",
                 headers: dict[str, str] | None = None) -> None:
        self.code = code
        self.status = status or _STATUS.get(code, 400)
        self.message = _MESSAGES.get(code, code)
        self.detail = detail
        self.headers = headers or {}
        super().__init__(f"{self.status} {code}: {detail or self.message}")
