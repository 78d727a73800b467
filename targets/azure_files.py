"""AzureFilesTarget: an Azure Files share and an optional base directory.

A put writes a hidden temporary file beside the final name (create, put ranges, properties)
and renames it over the final name. Missing parents are made on demand when a create answers
ParentNotFound; a per-process cache of directories known to exist keeps that to about one
directory call per folder per worker (``dir_calls`` counts them).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timezone

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.fileshare import ContentSettings, ExponentialRetry, ShareServiceClient

from copier.errors import AuthenticationFailed, BackendUnavailable, CopierError, PermanentError, SourceChanged, TransientError
from copier.protocols import Payload, TargetStat
from targets import names
from targets.azure_blob import META_MODE, META_MTIME, mode_text, sdk_options, mtime_from_metadata
from targets.azure_errors import status_and_code, translate
from targets.url import Credential, TargetLocation

RANGE_SIZE = 4 * 1024 * 1024  # the service's limit for one Put Range
_FILE_TIME = re.compile(r"^(?P<whole>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?Z?$")


def smb_time(mtime_ns: int) -> str:
    """An SMB/REST file time at the service's 100 ns precision: ``2024-05-01T12:00:00.1234567Z``."""
    seconds, rest = divmod(mtime_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 100:07d}Z"


def _ns(moment: datetime | str | None) -> int | None:
    """Nanoseconds since the epoch of a file time: a datetime (µs) or the service's text (100 ns)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        match = _FILE_TIME.match(moment)
        if match is None:
            return None
        whole = datetime.strptime(match["whole"], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        fraction = int((match["fraction"] or "").ljust(9, "0")[:9])
        return _ns(whole) + fraction  # type: ignore[operator]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


class AzureFilesTarget:
    has_directories = True
    # stat() returns the exact source mtime from metadata; list_files() returns the last write
    # time, which the service keeps in units of 100 ns.
    mtime_tolerance_ns = 100

    def __init__(self, location: TargetLocation, credential: Credential) -> None:
        self.url = location.url
        self.location = location
        extra = {"token_intent": "backup"} if credential.token is not None else {}
        self._service = ShareServiceClient(location.endpoint, credential=credential.for_sdk(),
                                           **sdk_options(ExponentialRetry), **extra)
        self._share = self._service.get_share_client(location.container)
        self._known: set[str] = {""}  # full directory paths known to exist ("" is the share root)
        self._making: dict[str, threading.Event] = {}  # folders being made right now
        self._lock = threading.Lock()
        self.dir_calls = 0

    def __repr__(self) -> str:
        return f"AzureFilesTarget({self.url!r})"

    __str__ = __repr__

    def _full(self, path: str) -> str:
        full = names.join(self.location.prefix, path)
        names.check_files_name(full)
        return full

    # -- Target -----------------------------------------------------------------------------
    def check(self) -> None:
        try:
            self._share.create_share()
        except ResourceExistsError:
            pass
        except Exception as exc:  # noqa: BLE001 - classified below
            err = translate(exc, f"create share {self.url}")
            if isinstance(err, AuthenticationFailed):
                raise err from None
            raise BackendUnavailable(str(err)) from None
        if self.location.prefix:
            try:
                self._ensure_dir(self._full(""))
            except CopierError as err:
                if isinstance(err, (AuthenticationFailed, BackendUnavailable)):
                    raise
                raise BackendUnavailable(str(err)) from None

    def stat(self, path: str) -> TargetStat | None:
        full = self._full(path)
        try:
            props = self._share.get_file_client(full).get_file_properties()
        except HttpResponseError as exc:
            if exc.status_code == 404 or status_and_code(exc)[1] == "ResourceTypeMismatch":
                return None  # nothing there, or a directory
            raise translate(exc, f"stat {path}") from None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"stat {path}") from None
        mtime = mtime_from_metadata(props.metadata)
        if mtime is None:
            mtime = _ns(props.last_write_time)
        return TargetStat(full.rpartition("/")[2], props.size, mtime)

    def put(self, path: str, payload: Payload) -> None:
        full = self._full(path)
        folder, _, name = full.rpartition("/")
        temp = self._share.get_file_client(names.join(folder, names.temp_name(name)))
        written = smb_time(payload.mtime_ns)
        meta = {META_MTIME: str(payload.mtime_ns), META_MODE: mode_text(payload.mode)}
        small = payload.data is not None
        settings = ContentSettings(content_md5=bytearray(payload.md5())) if small else None
        self._create(temp, folder, payload.size, written, meta, settings, path)
        try:
            offset = 0
            for chunk in payload.chunks(RANGE_SIZE):
                if chunk:
                    temp.upload_range(chunk, offset, len(chunk), file_last_write_mode="preserve")
                offset += len(chunk)
            if offset != payload.size:
                raise SourceChanged(f"size changed while copying (listed {payload.size}, read {offset})")
            if not small:
                temp.set_http_headers(ContentSettings(content_md5=bytearray(payload.md5())),
                                      file_last_write_time=written)
            temp.rename_file(full, overwrite=True)
        except BaseException as exc:
            self._discard(temp)
            if isinstance(exc, Exception) and not isinstance(exc, CopierError):
                raise translate(exc, f"put {path}") from None
            raise

    def _create(self, client, folder: str, size: int, written: str, meta: dict[str, str],
                settings: ContentSettings | None, path: str) -> None:
        for attempt in (1, 2):
            try:
                client.create_file(size, file_last_write_time=written, metadata=meta,
                                   content_settings=settings)
                if folder not in self._known:
                    with self._lock:
                        self._known.add(folder)
                return
            except Exception as exc:  # noqa: BLE001
                if status_and_code(exc)[1] == "ParentNotFound":
                    if attempt == 1:
                        self._forget(folder)
                        self._ensure_dir(folder)
                        continue
                    blocker = self._blocking_file(folder)
                    if blocker is not None:
                        raise PermanentError(f"put {path}: a file holds the name of parent folder "
                                             f"{blocker!r}") from None
                    raise TransientError(f"put {path}: parent folder vanished while writing") from None
                raise translate(exc, f"put {path}") from None

    def _discard(self, client) -> None:
        try:
            client.delete_file()
        except Exception:  # noqa: BLE001 - best effort; a stray temp name is harmless
            pass

    def flush(self) -> None:
        pass  # a put is durable once the service has answered it

    def make_dir(self, path: str) -> None:
        full = self._full(path) if path else self.location.prefix
        if full:
            self._ensure_dir(full)

    # -- directories ------------------------------------------------------------------------
    def _forget(self, folder: str) -> None:
        with self._lock:
            while folder:
                self._known.discard(folder)
                folder = names.parent(folder)

    def _ensure_dir(self, folder: str) -> None:
        """Make ``folder`` and its missing ancestors, once per process: threads that need the
        same folder at the same time wait for the one making it."""
        with self._lock:
            if folder in self._known:
                return
            pending = self._making.get(folder)
            mine = pending is None
            if mine:
                pending = self._making[folder] = threading.Event()
        if not mine:
            pending.wait(60)
            if folder in self._known:
                return
        try:
            self._make_chain(folder)
        finally:
            if mine:
                with self._lock:
                    self._making.pop(folder, None)
                pending.set()

    def _make_chain(self, folder: str) -> None:
        """Walk up creating until a create succeeds (or finds the folder there, or reaches one
        known to exist), then create back down: shortest existing prefix first."""
        missing: list[str] = []
        current = folder
        while current not in self._known:
            if self._create_dir(current) != "parent_missing":
                break
            missing.append(current)
            current = names.parent(current)
        for directory in reversed(missing):
            if self._create_dir(directory) == "parent_missing":
                raise TransientError(f"make directory {directory}: parent vanished while creating")
        with self._lock:
            self._known.update(missing)
            self._known.add(folder)

    def _blocking_file(self, folder: str) -> str | None:
        """The nearest ancestor of ``folder`` (itself included) that is a file, if any."""
        current = folder
        while current and current != self.location.prefix:
            try:
                self._share.get_file_client(current).get_file_properties()
                return current
            except Exception:  # noqa: BLE001 - not a file (or not there)
                current = names.parent(current)
        return None

    def _create_dir(self, folder: str) -> str:
        with self._lock:
            self.dir_calls += 1
        try:
            self._share.get_directory_client(folder).create_directory()
        except Exception as exc:  # noqa: BLE001
            code = status_and_code(exc)[1]
            if code == "ResourceAlreadyExists":
                with self._lock:
                    self._known.add(folder)
                return "exists"
            if code == "ParentNotFound":
                return "parent_missing"
            if code == "ResourceTypeMismatch":
                raise PermanentError(f"make directory {folder}: a file holds that name") from None
            raise translate(exc, f"make directory {folder}") from None
        with self._lock:
            self._known.add(folder)
        return "created"

    # -- Lister -----------------------------------------------------------------------------
    def list_files(self, dir_path: str) -> Iterator[TargetStat]:
        full = self._full(dir_path) if dir_path else self.location.prefix
        client = self._share.get_directory_client(full)
        try:
            for item in client.list_directories_and_files(include=["timestamps"]):
                if getattr(item, "is_directory", False) or names.is_temp_name(item.name):
                    continue
                yield TargetStat(item.name, item.size, _ns(getattr(item, "last_write_time", None)))
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return
            raise translate(exc, f"list {dir_path or '/'}") from None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"list {dir_path or '/'}") from None

    def is_empty(self) -> bool:
        client = self._share.get_directory_client(self.location.prefix)
        try:
            return next(iter(client.list_directories_and_files(results_per_page=1)), None) is None
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return True
            raise translate(exc, "list the target root") from None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, "list the target root") from None

    def sweep(self, path: str) -> int:
        folder, _, name = self._full(path).rpartition("/")
        client = self._share.get_directory_client(folder)
        removed = 0
        try:
            for item in client.list_directories_and_files(name_starts_with=names.temp_prefix(name)):
                if not getattr(item, "is_directory", False) and names.is_temp_name(item.name):
                    self._discard(self._share.get_file_client(names.join(folder, item.name)))
                    removed += 1
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return 0
            raise translate(exc, f"sweep {path}") from None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"sweep {path}") from None
        return removed

    def close(self) -> None:
        self._service.close()
