"""XML bodies: error, directory listing, share listing and range list, as the service writes them."""

from __future__ import annotations

import base64
import re
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from targets.files_emulator import properties as props
from targets.files_emulator.store import Directory, File, Node, Share

XML_HEAD = '\ufeff<?xml version="1.0" encoding="utf-8"?>'
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
ENCODED_NAMES_SINCE = "2021-12-02"
FILE_IDS_SINCE = "2020-04-08"


def error_body(code: str, message: str, request_id: str, time_text: str) -> bytes:
    text = f"{message}\nRequestId:{request_id}\nTime:{time_text}"
    return (XML_HEAD + f"<Error><Code>{escape(code)}</Code><Message>{escape(text)}</Message></Error>").encode()


def _value(text: str, version: str) -> tuple[str, bool]:
    """The text as written, and whether it had to be percent-encoded (Encoded="true")."""
    if version >= ENCODED_NAMES_SINCE and _XML_INVALID.search(text):
        return quote(text, safe=""), True
    return _XML_INVALID.sub("", text), False


def _element(tag: str, text: str, version: str) -> str:
    value, encoded = _value(text, version)
    attr = ' Encoded="true"' if encoded else ""
    return f"<{tag}{attr}>{escape(value)}</{tag}>"


def encode_marker(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii")


def decode_marker(marker: str) -> str:
    return base64.urlsafe_b64decode(marker.encode("ascii")).decode("utf-8")


def _node_properties(node: Node, include: set[str]) -> str:
    out = []
    if isinstance(node, File):
        out.append(f"<Content-Length>{node.size}</Content-Length>")
    if "timestamps" in include:
        out += [f"<CreationTime>{props.format_time(node.created)}</CreationTime>",
                f"<LastAccessTime>{props.format_time(node.last_write)}</LastAccessTime>",
                f"<LastWriteTime>{props.format_time(node.last_write)}</LastWriteTime>",
                f"<ChangeTime>{props.format_time(node.changed)}</ChangeTime>",
                f"<Last-Modified>{props.http_date(node.modified)}</Last-Modified>"]
    if "etag" in include:
        out.append(f"<Etag>{escape(props.etag(node.modified))}</Etag>")
    return f"<Properties>{''.join(out)}</Properties>" if out else "<Properties />"


def directory_listing(endpoint: str, share: Share, directory: Directory, entries: list[Node],
                      version: str, prefix: str | None, marker: str | None, max_results: int | None,
                      next_marker: str, include: set[str]) -> bytes:
    path_value, path_encoded = _value(directory.path(), version)
    attrs = f"ServiceEndpoint={quoteattr(endpoint)} ShareName={quoteattr(share.name)}"
    if path_encoded or (prefix and _value(prefix, version)[1]):
        attrs += ' Encoded="true"'
    attrs += f" DirectoryPath={quoteattr(path_value)}"
    ids = version >= FILE_IDS_SINCE
    out = [XML_HEAD, f"<EnumerationResults {attrs}>"]
    if marker:
        out.append(f"<Marker>{escape(marker)}</Marker>")
    if prefix:
        out.append(_element("Prefix", prefix, version))
    if max_results is not None:
        out.append(f"<MaxResults>{max_results}</MaxResults>")
    if ids:
        out.append(f"<DirectoryId>{directory.id}</DirectoryId>")
    out.append("<Entries>")
    for node in entries:
        tag = "File" if isinstance(node, File) else "Directory"
        out.append(f"<{tag}>{_element('Name', node.name, version)}")
        if ids:
            out.append(f"<FileId>{node.id}</FileId>")
        out.append(_node_properties(node, include))
        if "attributes" in include:
            out.append(f"<Attributes>{props.format_attributes(node.attributes)}</Attributes>")
        if "permissionkey" in include:
            out.append(f"<PermissionKey>{node.permission_key}</PermissionKey>")
        out.append(f"</{tag}>")
    out.append("</Entries>")
    out.append(f"<NextMarker>{next_marker}</NextMarker>" if next_marker else "<NextMarker />")
    out.append("</EnumerationResults>")
    return "".join(out).encode("utf-8")


def share_listing(endpoint: str, shares: list[Share], prefix: str | None, marker: str | None,
                  max_results: int | None, next_marker: str, with_metadata: bool) -> bytes:
    out = [XML_HEAD, f"<EnumerationResults ServiceEndpoint={quoteattr(endpoint)}>"]
    if prefix:
        out.append(f"<Prefix>{escape(prefix)}</Prefix>")
    if marker:
        out.append(f"<Marker>{escape(marker)}</Marker>")
    if max_results is not None:
        out.append(f"<MaxResults>{max_results}</MaxResults>")
    out.append("<Shares>" if shares else "<Shares />")
    for share in shares:
        out.append(f"<Share><Name>{escape(share.name)}</Name><Properties>"
                   f"<Last-Modified>{props.http_date(share.modified)}</Last-Modified>"
                   f"<Etag>{escape(props.etag(share.modified))}</Etag>"
                   f"<Quota>{share.quota_gib}</Quota></Properties>")
        if with_metadata:
            items = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in share.metadata.items())
            out.append(f"<Metadata>{items}</Metadata>" if items else "<Metadata />")
        out.append("</Share>")
    if shares:
        out.append("</Shares>")
    out.append(f"<NextMarker>{escape(next_marker)}</NextMarker>" if next_marker else "<NextMarker />")
    out.append("</EnumerationResults>")
    return "".join(out).encode("utf-8")


def range_list(ranges: list[tuple[int, int]]) -> bytes:
    items = "".join(f"<Range><Start>{a}</Start><End>{b}</End></Range>" for a, b in ranges)
    return (XML_HEAD + (f"<Ranges>{items}</Ranges>" if items else "<Ranges />")).encode("utf-8")
