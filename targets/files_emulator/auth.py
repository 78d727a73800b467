"""Who may ask: SharedKey signatures and SAS tokens (account and file/share service SAS).

Anonymous requests get 401 NoAuthenticationInformation; a bad signature, an expired or
not-yet-valid SAS get 403 AuthenticationFailed; a SAS without the needed permission gets
403 AuthorizationPermissionMismatch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from urllib.parse import unquote

from targets.files_emulator.errors import ServiceError

_STANDARD_HEADERS = ["content-encoding", "content-language", "content-length", "content-md5",
                     "content-type", "date", "if-modified-since", "if-match", "if-none-match",
                     "if-unmodified-since", "range"]


@dataclass(frozen=True)
class Credentials:
    account: str
    key: bytes  # decoded account key


@dataclass(frozen=True)
class AuthRequest:
    method: str
    raw_path: str  # as sent, percent-encoded, without the query
    query_pairs: list[tuple[str, str]]  # names as sent, values percent-decoded
    headers: Message
    share: str | None
    resource_path: str  # decoded path below the share, "" for the share itself
    level: str  # "service", "share" or "object"


def _sign(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode()


def _matches(key: bytes, signature: str, candidates: list[str]) -> bool:
    return any(hmac.compare_digest(_sign(key, text), signature) for text in candidates)


def check(request: AuthRequest, creds: Credentials) -> None:
    header = request.headers.get("Authorization")
    if header:
        _check_shared_key(request, creds, header)
    elif any(name == "sig" for name, _ in request.query_pairs):
        _check_sas(request, creds)
    else:
        raise ServiceError("NoAuthenticationInformation", 401,
                           headers={"WWW-Authenticate": "Bearer authorization_uri=https://login."
                                    "microsoftonline.com/common/oauth2/authorize resource_id="
                                    "https://storage.azure.com"})


def _check_shared_key(request: AuthRequest, creds: Credentials, header: str) -> None:
    scheme, _, credential = header.partition(" ")
    account, _, signature = credential.strip().rpartition(":")
    if scheme != "SharedKey" or account != creds.account:
        raise ServiceError("AuthenticationFailed", detail="unsupported scheme or other account")
    if not _matches(creds.key, signature, _shared_key_strings(request, creds.account)):
        raise ServiceError("AuthenticationFailed", detail="signature mismatch")


def _shared_key_strings(request: AuthRequest, account: str) -> list[str]:
    h = request.headers
    values = []
    for name in _STANDARD_HEADERS:
        value = h.get(name, "")
        if name == "content-length" and value == "0":
            value = ""
        values.append(value)
    head = request.method + "\n" + "\n".join(values) + "\n"
    x_ms: dict[str, str] = {}
    for name, value in h.items():
        lower = name.lower()
        if lower.startswith("x-ms-"):
            x_ms[lower] = f"{x_ms[lower]},{value.strip()}" if lower in x_ms else value.strip()
    query: dict[str, list[str]] = {}
    for name, value in request.query_pairs:
        query.setdefault(name.lower(), []).append(value)
    resource = "/" + account + request.raw_path
    resource += "".join(f"\n{name}:{','.join(sorted(vals))}" for name, vals in sorted(query.items()))
    # The service collates header names ignoring hyphens first; plain order is the usual result.
    orders = [sorted(x_ms), sorted(x_ms, key=lambda n: (n.replace("-", ""), n))]
    return [head + "".join(f"{n}:{x_ms[n]}\n" for n in order) + resource for order in orders]


def _parse_sas_time(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    if "T" not in text:
        text += "T00:00:00+00:00"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _needed_permission(request: AuthRequest) -> str:
    comp = next((v for n, v in request.query_pairs if n.lower() == "comp"), "")
    if request.method in ("GET", "HEAD"):
        return "l" if comp == "list" else "r"
    if request.method == "DELETE":
        return "d"
    return "cw" if comp == "" else "w"


def _check_sas(request: AuthRequest, creds: Credentials) -> None:
    q = {name: value for name, value in request.query_pairs}
    try:
        expiry = _parse_sas_time(q["se"])
        start = _parse_sas_time(q["st"]) if q.get("st") else None
    except (KeyError, ValueError) as exc:
        raise ServiceError("AuthenticationFailed", detail="malformed SAS") from exc
    now = datetime.now(timezone.utc)
    if now >= expiry or (start is not None and now < start):
        raise ServiceError("AuthenticationFailed", detail="Signature not valid in the specified time frame")
    get = lambda name: q.get(name, "")  # noqa: E731
    if "ss" in q:
        fields = [creds.account, get("sp"), get("ss"), get("srt"), get("st"), get("se"),
                  get("sip"), get("spr"), get("sv")]
        candidates = ["\n".join(fields + ["", ""]), "\n".join(fields + [""])]
        srt_needed = {"service": "s", "share": "c", "object": "o"}[request.level]
        if "f" not in get("ss") or srt_needed not in get("srt"):
            if _matches(creds.key, get("sig"), candidates):
                raise ServiceError("AuthorizationPermissionMismatch")
    else:
        if request.share is None:
            raise ServiceError("AuthenticationFailed", detail="service SAS without a share")
        resource = f"/file/{creds.account}/{request.share}"
        if get("sr") == "f":
            resource += "/" + request.resource_path
        tail = [get(n) for n in ("si", "sip", "spr", "sv", "rscc", "rscd", "rsce", "rscl", "rsct")]
        candidates = ["\n".join([get("sp"), get("st"), get("se"), resource] + tail)]
    if not _matches(creds.key, unquote(get("sig")) if "%" in get("sig") else get("sig"), candidates):
        raise ServiceError("AuthenticationFailed", detail="Signature did not match")
    if not any(p in get("sp") for p in _needed_permission(request)):
        raise ServiceError("AuthorizationPermissionMismatch")
