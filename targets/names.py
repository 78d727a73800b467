"""Which names each kind of storage can hold, and the temporary names puts write aside."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import secrets

from copier.errors import NameNotAllowed

# Characters no target here stores faithfully: C0 controls, DEL, lone surrogates (names that
# are not UTF-8 on the source arrive as surrogateescape), and the XML non-characters.
_BLOB_BAD = re.compile("[\x00-\x1f\x7f\\\\\ud800-\udfff\ufffe\uffff]")
_FILES_BAD = re.compile('[\x00-\x1f"\\\\:|<>*?\ud800-\udfff\ufffe\uffff]')

BLOB_NAME_MAX = 1024
FILES_COMPONENT_MAX = 255
FILES_PATH_MAX = 2048

_TEMP = re.compile(r"^\..*\.copier-[0-9a-f]{12}\.tmp$", re.S)


def split_path(path: str) -> list[str]:
    """The components of a relative ``/``-separated path; rejects empty, ``.`` and ``..``."""
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise NameNotAllowed(f"path component {part!r} is not allowed: {path!r}")
    return parts


def join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def parent(path: str) -> str:
    return path.rpartition("/")[0]


def temp_prefix(name: str) -> str:
    """What every temporary name for ``name`` starts with, and no other name's does."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()
    return f".{name[:40]}.{digest}.copier-"


_PROCESS_TAG = secrets.token_hex(3)  # unique per process; a counter makes each name unique in it
_counter = itertools.count()


def _new_process_tag() -> None:
    """A forked child (``copier copy``'s workers) draws its own tag, not its parent's."""
    global _PROCESS_TAG, _counter
    _PROCESS_TAG = secrets.token_hex(3)
    _counter = itertools.count()


os.register_at_fork(after_in_child=_new_process_tag)


def temp_name(name: str) -> str:
    """A hidden sibling name for writing ``name`` aside; short enough for any file system."""
    return f"{temp_prefix(name)}{_PROCESS_TAG}{next(_counter) % 0xFFFFFF:06x}.tmp"


def is_temp_name(name: str) -> bool:
    return bool(_TEMP.match(name))


def check_blob_name(full: str) -> None:
    """Raise NameNotAllowed unless Blob Storage holds ``full`` (prefix included) unchanged."""
    parts = split_path(full)
    if len(full) > BLOB_NAME_MAX:
        raise NameNotAllowed(f"blob name longer than {BLOB_NAME_MAX} characters")
    bad = _BLOB_BAD.search(full)
    if bad:
        raise NameNotAllowed(f"blob names cannot hold the character {bad.group()!r}")
    for part in parts:
        # The service front end drops trailing dots of URL path segments.
        if part.endswith("."):
            raise NameNotAllowed(f"blob name component ends with a dot: {part!r}")


def check_files_name(full: str) -> None:
    """Raise NameNotAllowed unless Azure Files holds ``full`` (base dir included)."""
    parts = split_path(full)
    if len(full) > FILES_PATH_MAX:
        raise NameNotAllowed(f"Azure Files path longer than {FILES_PATH_MAX} characters")
    bad = _FILES_BAD.search(full)
    if bad:
        raise NameNotAllowed(f"Azure Files names cannot hold the character {bad.group()!r}")
    for part in parts:
        if len(part) > FILES_COMPONENT_MAX:
            raise NameNotAllowed(f"Azure Files name component longer than {FILES_COMPONENT_MAX} characters")
        if part.endswith((".", " ")):
            raise NameNotAllowed(f"Azure Files name component ends with a dot or space: {part!r}")
