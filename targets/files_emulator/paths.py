"""Request paths: `/ACCOUNT/SHARE/dir%2Fsub/file` into an account, a share and name components.

The service decodes the whole path before it splits it, so `%2F` and a literal `/` both
separate components. Without `x-ms-allow-trailing-dot: true` it strips trailing dots from
every component, as SMB does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes, urlsplit

from targets.files_emulator.errors import ServiceError

MAX_COMPONENT = 255
MAX_PATH = 2048
_INVALID_NAME = re.compile(r'["\\/:|<>*?\x00-\x1f]')
_SHARE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class ResourcePath:
    account: str
    share: str | None
    parts: tuple[str, ...]

    @property
    def display(self) -> str:
        return "/".join(self.parts)


def decode(raw: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServiceError("InvalidUri", 400, "path is not UTF-8") from exc


def split_components(decoded: str, allow_trailing_dot: bool) -> tuple[str, ...]:
    parts = []
    for part in decoded.split("/"):
        if part == "":
            continue
        if not allow_trailing_dot:
            part = part.rstrip(".")
            if part == "":
                raise ServiceError("InvalidResourceName", 400, "a component is only dots")
        validate_name(part)
        parts.append(part)
    if sum(len(p) for p in parts) + max(len(parts) - 1, 0) > MAX_PATH:
        raise ServiceError("InvalidFileOrDirectoryPathName", 400, "path longer than 2048 characters")
    return tuple(parts)


def validate_name(name: str) -> None:
    if _INVALID_NAME.search(name):
        raise ServiceError("InvalidResourceName", 400, f"invalid character in {name!r}")
    if len(name) > MAX_COMPONENT:
        raise ServiceError("InvalidFileOrDirectoryPathName", 400, "name longer than 255 characters")


def validate_share_name(name: str) -> None:
    if not _SHARE_NAME.match(name):
        raise ServiceError("InvalidResourceName", 400, f"invalid share name {name!r}")


def parse_request_path(raw_path: str, allow_trailing_dot: bool) -> ResourcePath:
    """`raw_path` is the request target without its query, still percent-encoded."""
    segments = raw_path.lstrip("/").split("/", 2)
    account = decode(segments[0]) if segments else ""
    if not account:
        raise ServiceError("InvalidUri", 400, "no account in the path")
    share = decode(segments[1]) if len(segments) > 1 and segments[1] else None
    rest = segments[2] if len(segments) > 2 else ""
    if share is None and rest:
        raise ServiceError("InvalidUri", 400, "empty share name")
    parts = split_components(decode(rest), allow_trailing_dot) if rest else ()
    return ResourcePath(account, share, parts)


def parse_source_url(url: str, account: str, request_host: str, allow_trailing_dot: bool) -> ResourcePath:
    """The `x-ms-file-rename-source` URL: path-style on this server, or the account's own host."""
    split = urlsplit(url)
    path = split.path if split.scheme else url.split("?", 1)[0]
    host = split.netloc.lower()
    if split.scheme and host != request_host.lower() and host.split(".", 1)[0] == account.lower():
        path = "/" + account + path  # https://ACCOUNT.file.core.windows.net/SHARE/... (host-style)
    return parse_request_path(path, allow_trailing_dot)
