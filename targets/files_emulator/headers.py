"""Request headers into node properties, and node properties into response headers."""

from __future__ import annotations

import base64
import binascii

from targets.files_emulator import properties as props
from targets.files_emulator.errors import ServiceError
from targets.files_emulator.request import Request
from targets.files_emulator.store import Directory, File, Node

# x-ms-content-* request header -> the response header it comes back as.
CONTENT_HEADERS = {"x-ms-content-type": "Content-Type", "x-ms-content-encoding": "Content-Encoding",
                   "x-ms-content-language": "Content-Language", "x-ms-cache-control": "Cache-Control",
                   "x-ms-content-md5": "Content-MD5", "x-ms-content-disposition": "Content-Disposition"}


def apply_smb(node: Node, request: Request, creating: bool) -> None:
    """Times, attributes and permission key from the request; `preserve` (the default on
    updates) keeps a value, `now` (the default on create) takes the current time."""
    now = props.now_ticks()
    default = "now" if creating else "preserve"
    h = request.header
    node.created = props.smb_time(h("x-ms-file-creation-time"), "x-ms-file-creation-time",
                                  node.created, now, default)
    node.last_write = props.smb_time(h("x-ms-file-last-write-time"), "x-ms-file-last-write-time",
                                     node.last_write, now, default)
    node.changed = props.smb_time(h("x-ms-file-change-time"), "x-ms-file-change-time",
                                  node.changed, now, "now")
    attributes = h("x-ms-file-attributes")
    if attributes is not None and attributes.strip().lower() != "preserve":
        bits = props.parse_attributes(attributes)
        if isinstance(node, Directory):
            bits |= props.DIRECTORY
        elif creating:
            bits |= props.ARCHIVE
        node.attributes = bits
    key, permission = h("x-ms-file-permission-key"), h("x-ms-file-permission")
    if key and permission and permission.lower() != "preserve":
        raise ServiceError("InvalidHeaderValue", 400, "both permission and permission key given")
    if key:
        node.permission_key = key
    elif permission and permission.lower() not in ("inherit", "preserve"):
        node.permission_key = props.permission_key(permission)
    elif creating or (permission or "").lower() == "inherit":
        node.permission_key = (props.DEFAULT_DIRECTORY_PERMISSION_KEY if isinstance(node, Directory)
                               else props.DEFAULT_FILE_PERMISSION_KEY)


def apply_content(file: File, request: Request) -> None:
    """Set HTTP Headers replaces all of them, so a header not sent is cleared; a request with
    none of them (a resize, say) leaves them as they were, as the recordings show."""
    content = {}
    for name in CONTENT_HEADERS:
        value = request.header(name)
        if value:
            content[name] = value
    if "x-ms-content-md5" in content:
        try:
            if len(base64.b64decode(content["x-ms-content-md5"], validate=True)) != 16:
                raise ValueError
        except (ValueError, binascii.Error) as exc:
            raise ServiceError("InvalidHeaderValue", 400, "x-ms-content-md5") from exc
    if content:
        file.content = content


def smb_headers(node: Node) -> dict[str, str]:
    return {
        "x-ms-file-attributes": props.format_attributes(node.attributes),
        "x-ms-file-creation-time": props.format_time(node.created),
        "x-ms-file-last-write-time": props.format_time(node.last_write),
        "x-ms-file-change-time": props.format_time(node.changed),
        "x-ms-file-permission-key": node.permission_key,
        "x-ms-file-id": str(node.id),
        "x-ms-file-parent-id": str(node.parent_id),
    }


def entity_headers(modified: int) -> dict[str, str]:
    return {"ETag": props.etag(modified), "Last-Modified": props.http_date(modified)}


def node_headers(node: Node) -> dict[str, str]:
    return {**entity_headers(node.modified), **smb_headers(node)}


def metadata_headers(metadata: dict[str, str]) -> dict[str, str]:
    return {f"x-ms-meta-{name}": value for name, value in metadata.items()}


def file_headers(file: File) -> dict[str, str]:
    """What Get File Properties (HEAD) and Get File (GET) both return."""
    out = {**node_headers(file), **metadata_headers(file.metadata)}
    for name, response_name in CONTENT_HEADERS.items():
        if name in file.content:
            out[response_name] = file.content[name]
    out.update({"x-ms-type": "File", "x-ms-server-encrypted": "true",
                "x-ms-lease-state": "available", "x-ms-lease-status": "unlocked"})
    return out
