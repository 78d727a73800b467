"""Directory operations (`?restype=directory`): create, delete, properties, metadata, list."""

from __future__ import annotations

from targets.files_emulator import listing, properties as props
from targets.files_emulator.errors import ServiceError
from targets.files_emulator.headers import apply_smb, metadata_headers, node_headers
from targets.files_emulator.rename import rename
from targets.files_emulator.request import Request, Response
from targets.files_emulator.store import Directory, Share, Store

_CREATED = {"x-ms-request-server-encrypted": "true"}


def handle_directory(store: Store, share: Share, parts: tuple[str, ...], request: Request,
                     endpoint: str) -> Response:
    comp, method = request.query.get("comp", ""), request.method
    if method == "PUT" and comp == "":
        return _create(store, share, parts, request)
    if method == "PUT" and comp == "rename":
        return rename(store, share, parts, request, directory=True)
    if method == "GET" and comp == "list":
        return _list(share, parts, request, endpoint)
    if method == "GET" and comp == "listhandles":
        share.directory(parts)
        body = (listing.XML_HEAD + "<EnumerationResults><Entries /><NextMarker /></EnumerationResults>")
        return Response(200, {"Content-Type": "application/xml"}, body.encode())
    if method == "PUT" and comp == "forceclosehandles":
        share.directory(parts)
        return Response(200, {"x-ms-number-of-handles-closed": "0", "x-ms-number-of-handles-failed": "0"})
    directory = share.directory(parts)
    if method in ("GET", "HEAD") and comp in ("", "metadata"):
        return Response(200, {**node_headers(directory), **metadata_headers(directory.metadata),
                              "x-ms-server-encrypted": "true"})
    if method == "DELETE" and comp == "":
        if directory.parent is None:
            raise ServiceError("InvalidUri", 400, "the share root cannot be deleted")
        if directory.children:
            raise ServiceError("DirectoryNotEmpty")
        directory.parent.remove(directory)
        store.changed()
        return Response(202)
    if method == "PUT" and comp == "metadata":
        directory.metadata = request.metadata()
        directory.touch()
        store.changed()
        return Response(200, {"ETag": props.etag(directory.modified), **_CREATED})
    if method == "PUT" and comp == "properties":
        apply_smb(directory, request, creating=False)
        directory.touch()
        store.changed()
        return Response(200, {**node_headers(directory), **_CREATED})
    raise ServiceError("InvalidQueryParameterValue", 400, f"comp={comp!r} on a directory")


def _create(store: Store, share: Share, parts: tuple[str, ...], request: Request) -> Response:
    if not parts:
        raise ServiceError("ResourceAlreadyExists")
    parent = share.parent_of(parts)
    if parent.child(parts[-1]) is not None:
        raise ServiceError("ResourceAlreadyExists")
    now = props.now_ticks()
    directory = Directory(parts[-1], share.new_id(), parent, now, now, now, props.DIRECTORY,
                          props.DEFAULT_DIRECTORY_PERMISSION_KEY, request.metadata())
    apply_smb(directory, request, creating=True)
    parent.add(directory)
    store.changed()
    return Response(201, {**node_headers(directory), **_CREATED})


def _list(share: Share, parts: tuple[str, ...], request: Request, endpoint: str) -> Response:
    directory = share.directory(parts)
    prefix = request.query.get("prefix") or ""
    marker = request.query.get("marker") or ""
    limit = request.int_query("maxresults")
    include = {p.strip().lower() for p in request.query.get("include", "").split(",") if p.strip()}
    if request.flag("x-ms-file-extended-info"):
        include.add("fileid")
    try:
        start = listing.decode_marker(marker) if marker else ""
    except ValueError as exc:
        raise ServiceError("InvalidMarker", 400) from exc
    entries, next_key = directory.page(prefix, start, min(limit or 5000, 5000))
    next_marker = listing.encode_marker(next_key) if next_key else ""
    body = listing.directory_listing(endpoint, share, directory, entries, request.version,
                                     prefix or None, marker or None, limit, next_marker, include)
    return Response(200, {"Content-Type": "application/xml"}, body)
