"""Target URLs: what a URL names, which credential reaches it, and how to print it safely.

Forms (``parse_target_url``):

``/abs/path``, ``relative/path``, ``file:///abs/path``
    A local folder (relative paths are resolved against the working directory).
``https://ACCOUNT.blob.core.windows.net/container[/prefix][?SAS]``
    Azure Blob Storage: a container and an optional name prefix.
``https://ACCOUNT.file.core.windows.net/share[/dir][?SAS]``
    Azure Files: a share and an optional base directory.
``http://127.0.0.1:PORT/ACCOUNT/container[/prefix]`` (any host that is not ``*.core.*``)
    An emulator endpoint, path-style: the account is the first path segment. Such a URL
    does not say whether it is Blob (Azurite) or Files (our emulator), so the kind is
    decided by, in order: an explicit scheme prefix ``blob+http://`` / ``files+http://``
    (also ``blob+https``, ``files+https``); the environment variable
    ``COPIER_TARGET_KIND=blob|files``; else Blob. The prefixes work on account URLs too.

Credentials (``resolve_credential``), first match wins:

1. a SAS in the URL's query string;
2. ``AZURE_STORAGE_CONNECTION_STRING`` (its AccountKey, or its SharedAccessSignature);
   its account must be the URL's account;
3. ``AZURE_STORAGE_ACCOUNT_KEY`` for the URL's account;
4. azure-identity's ``DefaultAzureCredential``.

Every log line, status output and error names a target by ``redact(url)``: no query (the
SAS lives there) and no userinfo.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from copier.errors import ConfigError

Kind = Literal["local", "blob", "files"]

_ACCOUNT_HOST = re.compile(r"^(?P<account>[a-z0-9]{3,24})\.(?P<svc>blob|file)\.core\.[a-z0-9.-]+$")
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_KIND_PREFIX = {"blob": "blob", "files": "files", "file": "files"}


def redact(url: str) -> str:
    """``url`` without its query, fragment and userinfo: safe for logs, status and errors."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text.split("?", 1)[0].split("#", 1)[0]
    if not parts.scheme or parts.scheme == "file" or len(parts.scheme) == 1:  # a local path
        return text
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class TargetLocation:
    """Where a target URL points. ``endpoint`` is the account's service URL (for emulators
    it ends in ``/ACCOUNT``); ``container`` is the container or share."""

    kind: Kind
    url: str  # redacted
    path: str = ""  # local folder
    endpoint: str = ""
    account: str = ""
    container: str = ""
    prefix: str = ""  # "" or "a/b", no leading or trailing slash
    sas: str | None = None
    emulator: bool = False


@dataclass(frozen=True, slots=True)
class Credential:
    """Exactly one of ``key`` (SharedKey), ``sas`` or ``token`` (a TokenCredential)."""

    account: str
    key: bytes | None = None
    sas: str | None = None
    token: Any = None

    def __repr__(self) -> str:  # never print the secret
        how = "key" if self.key else "sas" if self.sas else "token"
        return f"Credential(account={self.account!r}, {how})"

    def for_sdk(self) -> Any:
        """The ``credential`` argument of the azure-storage clients."""
        if self.key is not None:
            return {"account_name": self.account, "account_key": base64.b64encode(self.key).decode()}
        if self.sas is not None:
            return self.sas  # the SDK's AzureSasCredential would also do; a str is simplest
        return self.token


def parse_target_url(url: str, env: Mapping[str, str] = os.environ) -> TargetLocation:
    """Split a target URL into a ``TargetLocation``. Raises ConfigError with one clear line."""
    if not url or not url.strip():
        raise ConfigError("target URL is empty")
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) else ""
    if not scheme:
        return TargetLocation(kind="local", url=os.path.abspath(text), path=os.path.abspath(text))
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"file URL must name a local path (file:///abs/path): {redact(text)}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ConfigError(f"file URL must hold an absolute path: {redact(text)}")
        return TargetLocation(kind="local", url=path, path=os.path.abspath(path))

    explicit: str | None = None
    if "+" in scheme:
        prefix, _, scheme = scheme.partition("+")
        if prefix not in _KIND_PREFIX:
            raise ConfigError(f"unknown target kind {prefix!r} in {redact(text)} (use blob+ or files+)")
        explicit = _KIND_PREFIX[prefix]
        text = text.split("+", 1)[1]
    if scheme not in ("http", "https"):
        raise ConfigError(f"unsupported target URL scheme {scheme!r}: {redact(text)}")
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"malformed target URL {redact(text)}: {exc}") from None
    if not host:
        raise ConfigError(f"target URL has no host: {redact(text)}")
    netloc = host if port is None else f"{host}:{port}"
    segments = [unquote(s) for s in parts.path.split("/") if s]
    sas = parts.query or None

    match = _ACCOUNT_HOST.match(host)
    if match:
        account = match["account"]
        kind = explicit or ("blob" if match["svc"] == "blob" else "files")
        if (kind == "blob") != (match["svc"] == "blob"):
            raise ConfigError(f"{kind}+ prefix does not fit a {match['svc']} endpoint: {redact(text)}")
        endpoint = f"{parts.scheme}://{netloc}"
        emulator = False
    else:
        if not segments:
            raise ConfigError(f"emulator URL must be http://HOST:PORT/ACCOUNT/CONTAINER[/PREFIX]: {redact(text)}")
        account = segments.pop(0)
        kind = explicit or _kind_from_env(env)
        endpoint = f"{parts.scheme}://{netloc}/{account}"
        emulator = True
    what = "container" if kind == "blob" else "share"
    if not _ACCOUNT.match(account):
        raise ConfigError(f"invalid storage account name {account!r} in {redact(text)}")
    if not segments:
        raise ConfigError(f"target URL names no {what}: {redact(text)}")
    container = segments.pop(0)
    if not _CONTAINER.match(container):
        raise ConfigError(f"invalid {what} name {container!r} (3-63 of a-z, 0-9, single '-'): {redact(text)}")
    for seg in segments:
        if seg in (".", ".."):
            raise ConfigError(f"target prefix may not hold '.' or '..': {redact(text)}")
    return TargetLocation(kind=kind, url=redact(url.strip()), endpoint=endpoint, account=account,
                          container=container, prefix="/".join(segments), sas=sas, emulator=emulator)


def _kind_from_env(env: Mapping[str, str]) -> str:
    value = (env.get("COPIER_TARGET_KIND") or "blob").strip().lower()
    if value not in _KIND_PREFIX:
        raise ConfigError(f"COPIER_TARGET_KIND must be blob or files, not {value!r}")
    return _KIND_PREFIX[value]


def parse_connection_string(text: str) -> dict[str, str]:
    """``Key=Value;…`` pairs (keys as written). Values may hold '='."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        if part.strip():
            key, sep, value = part.partition("=")
            if not sep:
                raise ConfigError("AZURE_STORAGE_CONNECTION_STRING is malformed (expected Key=Value;…)")
            out[key.strip()] = value.strip()
    return out


def resolve_credential(loc: TargetLocation, env: Mapping[str, str] = os.environ) -> Credential:
    """The credential for an Azure target (see the module docstring for the order)."""
    if loc.sas:
        return Credential(account=loc.account, sas=loc.sas)
    conn = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if conn:
        fields = parse_connection_string(conn)
        name = fields.get("AccountName")
        if name and name != loc.account:
            raise ConfigError(f"AZURE_STORAGE_CONNECTION_STRING is for account {name!r}, "
                              f"the target {loc.url} is in {loc.account!r}")
        if fields.get("AccountKey"):
            return Credential(account=loc.account, key=_decode_key(fields["AccountKey"], "connection string"))
        if fields.get("SharedAccessSignature"):
            return Credential(account=loc.account, sas=fields["SharedAccessSignature"].lstrip("?"))
        raise ConfigError("AZURE_STORAGE_CONNECTION_STRING has neither AccountKey nor SharedAccessSignature")
    key = env.get("AZURE_STORAGE_ACCOUNT_KEY")
    if key:
        return Credential(account=loc.account, key=_decode_key(key, "AZURE_STORAGE_ACCOUNT_KEY"))
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:  # pragma: no cover - azure-identity is a dependency
        raise ConfigError("no credential for the target and azure-identity is not installed") from None
    return Credential(account=loc.account, token=DefaultAzureCredential())


def _decode_key(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the account key in {where} is not valid base64") from None
