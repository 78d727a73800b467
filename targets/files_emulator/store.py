"""The namespace: shares holding a tree of directories and files, behind one lock.

Every directory keeps its children in a dict keyed by the case-folded name (Azure Files is
case-insensitive and case-preserving), so a lookup costs one dict access per path component.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

from targets.files_emulator import properties as props
from targets.files_emulator.errors import ServiceError


def fold(name: str) -> str:
    if name.isascii():
        return name.upper()
    return "".join(c.upper() if len(c.upper()) == 1 else c for c in name)


def item_id(n: int) -> int:
    """The real service's id sequence: 13835128424026341376, 11529285414812647424, ... per share."""
    if n < 1 << 16:
        return 0x8000400000000000 | (int(f"{n:016b}"[::-1], 2) << 47)
    return 0x8000000000000000 | n


@dataclass(eq=False)
class Node:
    name: str
    id: int
    parent: Directory | None
    created: int
    last_write: int
    changed: int
    attributes: int
    permission_key: str
    metadata: dict[str, str] = field(default_factory=dict)
    modified: int = field(default_factory=props.now_ticks)

    def touch(self) -> None:
        self.modified = props.now_ticks()

    @property
    def parent_id(self) -> int:
        return self.parent.id if self.parent is not None else 0

    def path(self) -> str:
        names, node = [], self
        while node.parent is not None:
            names.append(node.name)
            node = node.parent
        return "/".join(reversed(names))


@dataclass(eq=False)
class Directory(Node):
    children: dict[str, Node] = field(default_factory=dict)
    _sorted: list[str] | None = None

    def child(self, name: str) -> Node | None:
        return self.children.get(fold(name))

    def add(self, node: Node) -> None:
        node.parent = self
        self.children[fold(node.name)] = node
        self._sorted = None

    def remove(self, node: Node) -> None:
        del self.children[fold(node.name)]
        self._sorted = None

    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.children)
        return self._sorted

    def page(self, prefix: str, marker: str, limit: int) -> tuple[list[Node], str]:
        """Children whose name starts with `prefix`, in name order, from `marker` on."""
        keys = self.sorted_keys()
        start = fold(prefix)
        i = bisect.bisect_left(keys, max(start, marker) if marker else start)
        out: list[Node] = []
        while i < len(keys) and keys[i].startswith(start):
            if len(out) == limit:
                return out, keys[i]
            out.append(self.children[keys[i]])
            i += 1
        return out, ""


@dataclass(eq=False)
class File(Node):
    size: int = 0
    data: bytearray = field(default_factory=bytearray)  # bytes past len(data) read as zeros
    ranges: list[tuple[int, int]] = field(default_factory=list)  # written ranges, inclusive
    content: dict[str, str] = field(default_factory=dict)  # content-type, content-md5, ...

    def read(self, start: int, end: int) -> bytes:
        chunk = bytes(self.data[start:end + 1])
        return chunk + bytes(end + 1 - start - len(chunk))

    def write(self, start: int, payload: bytes) -> None:
        end = start + len(payload)
        if len(self.data) < end:
            self.data.extend(bytes(end - len(self.data)))
        self.data[start:end] = payload
        self._mark(start, end - 1, written=True)

    def clear(self, start: int, end: int) -> None:
        if start < len(self.data):
            stop = min(end + 1, len(self.data))
            self.data[start:stop] = bytes(stop - start)
        self._mark(start, end, written=False)

    def resize(self, size: int) -> None:
        self.size = size
        del self.data[size:]
        self._mark(size, 1 << 62, written=False)

    def _mark(self, start: int, end: int, written: bool) -> None:
        kept = []
        for a, b in self.ranges:
            if b < start or a > end:
                kept.append((a, b))
                continue
            if a < start:
                kept.append((a, start - 1))
            if b > end:
                kept.append((end + 1, b))
        if written:
            kept.append((start, end))
        kept.sort()
        merged: list[tuple[int, int]] = []
        for a, b in kept:
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        self.ranges = merged


@dataclass(eq=False)
class Share:
    name: str
    quota_gib: int = 5120
    metadata: dict[str, str] = field(default_factory=dict)
    modified: int = field(default_factory=props.now_ticks)
    root: Directory = None  # type: ignore[assignment]
    allocated: int = 0

    def __post_init__(self) -> None:
        if self.root is None:
            t = self.modified
            self.root = Directory("", 0, None, t, t, t, props.DIRECTORY,
                                  props.DEFAULT_DIRECTORY_PERMISSION_KEY)

    def new_id(self) -> int:
        self.allocated += 1
        return item_id(self.allocated)

    def parent_of(self, parts: tuple[str, ...]) -> Directory:
        """The directory that holds `parts[-1]`; ParentNotFound if any step is missing."""
        node: Node = self.root
        for name in parts[:-1]:
            node = node.child(name) if isinstance(node, Directory) else None
            if not isinstance(node, Directory):
                raise ServiceError("ParentNotFound")
        return node  # type: ignore[return-value]

    def lookup(self, parts: tuple[str, ...]) -> Node:
        if not parts:
            return self.root
        node = self.parent_of(parts).child(parts[-1])
        if node is None:
            raise ServiceError("ResourceNotFound")
        return node

    def directory(self, parts: tuple[str, ...]) -> Directory:
        node = self.lookup(parts)
        if not isinstance(node, Directory):
            raise ServiceError("ResourceTypeMismatch")
        return node

    def file(self, parts: tuple[str, ...]) -> File:
        node = self.lookup(parts)
        if not isinstance(node, File):
            raise ServiceError("ResourceTypeMismatch")
        return node


class Store:
    """All shares of the account. Handlers hold `lock` while they read or change anything."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.shares: dict[str, Share] = {}
        self.version = 0  # bumped on every change; persistence writes when it moves

    def share(self, name: str) -> Share:
        share = self.shares.get(name)
        if share is None:
            raise ServiceError("ShareNotFound")
        return share

    def changed(self) -> None:
        self.version += 1

    def __getstate__(self) -> dict:
        return {"shares": self.shares}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
        self.shares = state["shares"]
