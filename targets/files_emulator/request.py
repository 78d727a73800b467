"""One HTTP request and one response, free of the HTTP server that carries them."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import unquote

from targets.files_emulator.errors import ServiceError

DEFAULT_VERSION = "2025-05-05"


@dataclass
class Request:
    method: str
    raw_path: str
    raw_query: str
    headers: Message
    body: bytes
    host: str
    query_pairs: list[tuple[str, str]] = field(init=False)
    query: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        pairs = []
        for item in self.raw_query.split("&") if self.raw_query else []:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
        self.query_pairs = pairs
        self.query = {name.lower(): value for name, value in pairs}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def flag(self, name: str) -> bool:
        return (self.header(name) or "").strip().lower() == "true"

    @property
    def version(self) -> str:
        return self.header("x-ms-version") or DEFAULT_VERSION

    def metadata(self) -> dict[str, str]:
        out = {}
        for name, value in self.headers.items():
            if name.lower().startswith("x-ms-meta-"):
                out[name[len("x-ms-meta-"):]] = value
        return out

    def int_header(self, name: str) -> int | None:
        value = self.header(name)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError as exc:
            raise ServiceError("InvalidHeaderValue", 400, f"{name}: {value!r}") from exc
        if number < 0:
            raise ServiceError("InvalidHeaderValue", 400, f"{name}: {value!r}")
        return number

    def int_query(self, name: str) -> int | None:
        value = self.query.get(name)
        if value is None:
            return None
        if not value.isdigit() or int(value) < 1:
            raise ServiceError("InvalidQueryParameterValue", 400, f"{name}={value!r}")
        return int(value)


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
