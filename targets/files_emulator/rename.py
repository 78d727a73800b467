"""Rename (`?comp=rename`) of a file or a directory within one share; the item keeps its id."""

from __future__ import annotations

from targets.files_emulator import properties as props
from targets.files_emulator.errors import ServiceError
from targets.files_emulator.headers import apply_smb, node_headers
from targets.files_emulator.paths import parse_source_url
from targets.files_emulator.request import Request, Response
from targets.files_emulator.store import Directory, File, Share, Store


def rename(store: Store, share: Share, parts: tuple[str, ...], request: Request,
           directory: bool) -> Response:
    source_url = request.header("x-ms-file-rename-source")
    if not source_url:
        raise ServiceError("MissingRequiredHeader", 400, "x-ms-file-rename-source")
    if not parts:
        raise ServiceError("InvalidUri", 400, "cannot rename onto the share root")
    account = request.raw_path.lstrip("/").split("/", 1)[0]
    source_path = parse_source_url(source_url, account, request.host,
                                   request.flag("x-ms-source-allow-trailing-dot"))
    if source_path.share != share.name or not source_path.parts:
        raise ServiceError("InvalidHeaderValue", 400, "rename source must be in the same share")
    node = share.lookup(source_path.parts)
    if directory != isinstance(node, Directory):
        raise ServiceError("ResourceTypeMismatch")
    parent = share.parent_of(parts)
    ancestor: Directory | None = parent
    while ancestor is not None:
        if ancestor is node:
            raise ServiceError("InvalidInput", 400, "cannot move a directory below itself")
        ancestor = ancestor.parent
    existing = parent.child(parts[-1])
    if existing is not None and existing is not node:
        if isinstance(existing, Directory) or not request.flag("x-ms-file-rename-replace-if-exists"):
            raise ServiceError("ResourceAlreadyExists")
        if existing.attributes & 0x1 and not request.flag("x-ms-file-rename-ignore-readonly"):
            raise ServiceError("ReadOnlyAttribute", 409)
        parent.remove(existing)
    assert node.parent is not None
    node.parent.remove(node)
    node.name = parts[-1]
    parent.add(node)
    node.changed = props.now_ticks()
    apply_smb(node, request, creating=False)
    if isinstance(node, File) and request.header("x-ms-content-type"):
        node.content["x-ms-content-type"] = request.header("x-ms-content-type") or ""
    metadata = request.metadata()
    if metadata:
        node.metadata = metadata
    node.touch()
    store.changed()
    return Response(200, {**node_headers(node), "x-ms-request-server-encrypted": "true"})
