"""SMB properties (times with 100 ns ticks, attributes, permission keys), ETags and HTTP dates."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from datetime import datetime, timezone
from email.utils import formatdate

from targets.files_emulator.errors import ServiceError

_EPOCH_TO_FILETIME = 116444736000000000  # 100 ns ticks from 1601-01-01 to 1970-01-01
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?Z$")

# Windows attribute bits, in the order the service prints them ("Hidden | Archive").
_ATTRIBUTES = [("ReadOnly", 0x1), ("Hidden", 0x2), ("System", 0x4), ("Directory", 0x10),
               ("Archive", 0x20), ("Temporary", 0x100), ("Offline", 0x1000),
               ("NotContentIndexed", 0x2000), ("NoScrubData", 0x20000)]
_ATTRIBUTE_BITS = {name.lower(): bit for name, bit in _ATTRIBUTES}
DIRECTORY = 0x10
ARCHIVE = 0x20

# The real service's key for the default ("inherit") descriptors, as the recordings show.
DEFAULT_FILE_PERMISSION_KEY = "3254952746172754359*9622787259914961209"
DEFAULT_DIRECTORY_PERMISSION_KEY = "17100207456270243504*9622787259914961209"

_clock_lock = threading.Lock()
_last_tick = 0


def now_ticks() -> int:
    """100 ns ticks since the Unix epoch; strictly increasing, so every change gets a new ETag."""
    global _last_tick
    with _clock_lock:
        _last_tick = max(time.time_ns() // 100, _last_tick + 1)
        return _last_tick


def format_time(ticks: int) -> str:
    seconds, fraction = divmod(ticks, 10_000_000)
    stamp = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:07d}Z"


def parse_time(value: str, header: str) -> int:
    match = _TIME.match(value.strip())
    if not match:
        raise ServiceError("InvalidHeaderValue", 400, f"{header}: {value!r}")
    y, mo, d, h, mi, s, frac = match.groups()
    try:
        stamp = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone.utc)
    except ValueError as exc:
        raise ServiceError("InvalidHeaderValue", 400, f"{header}: {value!r}") from exc
    return int(stamp.timestamp()) * 10_000_000 + int((frac or "0").ljust(7, "0"))


def smb_time(value: str | None, header: str, current: int, now: int, default: str) -> int:
    """A time header's value: a timestamp, `now`, or `preserve` (keep `current`)."""
    value = (value or default).strip()
    if value.lower() == "now":
        return now
    if value.lower() == "preserve":
        return current
    return parse_time(value, header)


def parse_attributes(value: str, header: str = "x-ms-file-attributes") -> int:
    bits = 0
    for name in value.split("|"):
        name = name.strip().lower()
        if name in ("", "none"):
            continue
        if name not in _ATTRIBUTE_BITS:
            raise ServiceError("InvalidHeaderValue", 400, f"{header}: {value!r}")
        bits |= _ATTRIBUTE_BITS[name]
    return bits


def format_attributes(bits: int) -> str:
    names = [name for name, bit in _ATTRIBUTES if bits & bit]
    return " | ".join(names) if names else "None"


def permission_key(sddl: str) -> str:
    digest = hashlib.sha256(sddl.encode("utf-8")).digest()
    return f"{int.from_bytes(digest[:8], 'big')}*{int.from_bytes(digest[8:16], 'big')}"


def etag(ticks: int) -> str:
    return f'"0x{ticks + _EPOCH_TO_FILETIME:X}"'


def http_date(ticks: int | None = None) -> str:
    seconds = time.time() if ticks is None else ticks / 10_000_000
    return formatdate(seconds, usegmt=True)
