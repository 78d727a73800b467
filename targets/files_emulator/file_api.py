"""File operations: create, read, delete, Put Range, range list, properties, metadata, rename."""

from __future__ import annotations

import base64
import hashlib
import re

from targets.files_emulator import listing, properties as props
from targets.files_emulator.errors import ServiceError
from targets.files_emulator.headers import (apply_content, apply_smb, file_headers, metadata_headers,
                                            node_headers)
from targets.files_emulator.rename import rename
from targets.files_emulator.request import Request, Response
from targets.files_emulator.store import Directory, File, Share, Store

MAX_RANGE = 4 * 1024 * 1024
MAX_FILE = 4 * 1024 ** 4
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_ENCRYPTED = {"x-ms-request-server-encrypted": "true"}


def handle_file(store: Store, share: Share, parts: tuple[str, ...], request: Request) -> Response:
    comp, method = request.query.get("comp", ""), request.method
    if not parts:
        raise ServiceError("InvalidUri", 400, "a file needs a name")
    if method == "PUT" and comp == "":
        return _create(store, share, parts, request)
    if method == "PUT" and comp == "rename":
        return rename(store, share, parts, request, directory=False)
    file = share.file(parts)
    if method in ("GET", "HEAD") and comp == "":
        return _read(file, request)
    if method == "DELETE" and comp == "":
        assert file.parent is not None
        file.parent.remove(file)
        store.changed()
        return Response(202)
    if method == "PUT" and comp == "range":
        return _put_range(store, file, request)
    if method == "GET" and comp == "rangelist":
        ranges = [(a, min(b, file.size - 1)) for a, b in file.ranges if a < file.size]
        return Response(200, {"ETag": props.etag(file.modified), "Last-Modified": props.http_date(file.modified),
                              "x-ms-content-length": str(file.size), "Content-Type": "application/xml"},
                        listing.range_list(ranges))
    if method == "PUT" and comp == "properties":
        size = request.int_header("x-ms-content-length")
        if size is not None:
            _check_size(size)
            file.resize(size)
        apply_content(file, request)
        apply_smb(file, request, creating=False)
        file.touch()
        store.changed()
        return Response(200, {**node_headers(file), **_ENCRYPTED})
    if method == "PUT" and comp == "metadata":
        file.metadata = request.metadata()
        file.touch()
        store.changed()
        return Response(200, {"ETag": props.etag(file.modified), **_ENCRYPTED})
    if method in ("GET", "HEAD") and comp == "metadata":
        return Response(200, {"ETag": props.etag(file.modified), **metadata_headers(file.metadata)})
    raise ServiceError("InvalidQueryParameterValue", 400, f"comp={comp!r} on a file")


def _check_size(size: int) -> None:
    if size > MAX_FILE:
        raise ServiceError("InvalidHeaderValue", 400, "x-ms-content-length above 4 TiB")


def _create(store: Store, share: Share, parts: tuple[str, ...], request: Request) -> Response:
    if (request.header("x-ms-type") or "").lower() != "file":
        raise ServiceError("MissingRequiredHeader" if request.header("x-ms-type") is None
                           else "InvalidHeaderValue", 400, "x-ms-type: file")
    size = request.int_header("x-ms-content-length")
    if size is None:
        raise ServiceError("MissingRequiredHeader", 400, "x-ms-content-length")
    _check_size(size)
    parent = share.parent_of(parts)
    existing = parent.child(parts[-1])
    if isinstance(existing, Directory):
        raise ServiceError("ResourceAlreadyExists")
    now = props.now_ticks()
    file = File(parts[-1], existing.id if existing else share.new_id(), parent, now, now, now,
                props.ARCHIVE, props.DEFAULT_FILE_PERMISSION_KEY, request.metadata(), size=size)
    if existing is not None:
        parent.remove(existing)  # Create File over a file replaces it; the id stays
    apply_smb(file, request, creating=True)
    apply_content(file, request)
    # Without x-ms-content-type the service keeps the request's own Content-Type (the 2019
    # SDK sent "application/xml; charset=utf-8" and got it back), else octet-stream.
    file.content.setdefault("x-ms-content-type", request.header("Content-Type") or "application/octet-stream")
    parent.add(file)
    store.changed()
    return Response(201, {**node_headers(file), **_ENCRYPTED})


def _requested_range(request: Request) -> tuple[int, int | None] | None:
    value = request.header("x-ms-range") or request.header("Range")
    if not value:
        return None
    match = _RANGE.match(value.strip())
    if not match:
        raise ServiceError("InvalidHeaderValue", 400, f"range {value!r}")
    start, end = int(match.group(1)), match.group(2)
    if end and int(end) < start:
        raise ServiceError("InvalidRange", 416, headers={})
    return start, int(end) if end else None


def _read(file: File, request: Request) -> Response:
    headers = {**file_headers(file), "Accept-Ranges": "bytes"}
    wanted = _requested_range(request)
    if wanted is None:
        if "x-ms-content-md5" in file.content:
            headers["Content-MD5"] = file.content["x-ms-content-md5"]
        body = file.read(0, file.size - 1) if request.method == "GET" and file.size else b""
        headers["Content-Length"] = str(file.size)
        return Response(200, headers, body)
    start, end = wanted
    if start >= file.size:
        raise ServiceError("InvalidRange", 416, headers={"Content-Range": f"bytes */{file.size}"})
    end = file.size - 1 if end is None else min(end, file.size - 1)
    headers.pop("Content-MD5", None)
    if "x-ms-content-md5" in file.content:
        headers["x-ms-content-md5"] = file.content["x-ms-content-md5"]
    body = file.read(start, end)
    if request.flag("x-ms-range-get-content-md5"):
        if end - start + 1 > MAX_RANGE:
            raise ServiceError("OutOfRangeInput", 400, "range above 4 MiB with x-ms-range-get-content-md5")
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    headers["Content-Range"] = f"bytes {start}-{end}/{file.size}"
    headers["Content-Length"] = str(end - start + 1)
    return Response(206, headers, body if request.method == "GET" else b"")


def _put_range(store: Store, file: File, request: Request) -> Response:
    wanted = _requested_range(request)
    if wanted is None or wanted[1] is None:
        raise ServiceError("MissingRequiredHeader", 400, "x-ms-range with start and end")
    start, end = wanted
    write = (request.header("x-ms-write") or "").lower()
    if end >= file.size:
        raise ServiceError("InvalidRange", 416)
    headers: dict[str, str] = {}
    if write == "update":
        if end - start + 1 > MAX_RANGE:
            raise ServiceError("RequestBodyTooLarge")
        if len(request.body) != end - start + 1:
            raise ServiceError("InvalidHeaderValue", 400, "Content-Length differs from the range")
        digest = base64.b64encode(hashlib.md5(request.body).digest()).decode()
        sent = request.header("Content-MD5")
        if sent is not None and sent.strip() != digest:
            raise ServiceError("Md5Mismatch")
        file.write(start, request.body)
        headers["Content-MD5"] = digest
    elif write == "clear":
        if request.body:
            raise ServiceError("InvalidHeaderValue", 400, "clear takes no body")
        file.clear(start, end)
    else:
        raise ServiceError("InvalidHeaderValue", 400, "x-ms-write must be update or clear")
    now = props.now_ticks()
    if (request.header("x-ms-file-last-write-time") or "now").lower() != "preserve":
        file.last_write = now
    file.changed = now
    file.touch()
    store.changed()
    return Response(201, {"ETag": props.etag(file.modified), "Last-Modified": props.http_date(file.modified),
                          "x-ms-file-last-write-time": props.format_time(file.last_write),
                          **headers, **_ENCRYPTED})
