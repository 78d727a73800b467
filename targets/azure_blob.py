"""AzureBlobTarget: block blobs in one container, under an optional name prefix.

Files up to 64 MiB go up in one Put Blob (small ones from memory, larger ones streamed from
the file) and stat is one HEAD, all on the lean client (``targets.azure_http``); everything
else (container, blocks of larger files, listing) uses the SDK.
"""

from __future__ import annotations

import base64
import secrets
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobPrefix, BlobServiceClient, ContentSettings, ExponentialRetry

from copier.errors import AuthenticationFailed, BackendUnavailable, CopierError, SourceChanged
from copier.protocols import Payload, TargetStat
from targets import names
from targets.azure_errors import classify, translate
from targets.azure_http import API_VERSION, LeanBlobClient
from targets.url import Credential, TargetLocation

BLOCK_SIZE = 8 * 1024 * 1024
BLOCK_PARALLEL = 4
# Up to this size a file goes up in one streamed Put Blob (the Azure SDK's own default
# max_single_put_size); larger ones in blocks of BLOCK_SIZE, BLOCK_PARALLEL at a time, so a
# failed request costs one block, not the file.
SINGLE_PUT_MAX = 64 * 1024 * 1024
STREAM_CHUNK = 1024 * 1024
META_MTIME = "copier_mtime_ns"
META_MODE = "copier_mode"


def sdk_options(retry_class: type) -> dict:
    """Bounded SDK retries (the caller retries whole transfers) and sane timeouts. The
    storage SDK's default backoff (15 s, then 15+3^n) is meant for lone scripts, not fleets."""
    return {"retry_policy": retry_class(initial_backoff=1, increment_base=2, retry_total=3, random_jitter_range=1),
            "connection_timeout": 10, "read_timeout": 120}


def mode_text(mode: int) -> str:
    return f"{mode & 0o7777:04o}"


def mtime_from_metadata(meta: dict[str, str] | None) -> int | None:
    value = (meta or {}).get(META_MTIME)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class AzureBlobTarget:
    has_directories = False
    mtime_tolerance_ns = 0  # the exact source mtime travels in metadata

    def __init__(self, location: TargetLocation, credential: Credential, *, fast_path: bool = True,
                 block_size: int = BLOCK_SIZE, block_parallel: int = BLOCK_PARALLEL,
                 single_put_max: int = SINGLE_PUT_MAX) -> None:
        self.url = location.url
        self.location = location
        self.single_put_max = single_put_max
        self.block_size = block_size
        self.block_parallel = max(1, block_parallel)
        self._service = BlobServiceClient(location.endpoint, credential=credential.for_sdk(),
                                          api_version=API_VERSION if API_VERSION_OK else None,
                                          **sdk_options(ExponentialRetry))
        self._container = self._service.get_container_client(location.container)
        self._fast = LeanBlobClient(location.endpoint, credential) if fast_path else None
        self._has_sas = credential.sas is not None
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"AzureBlobTarget({self.url!r})"

    __str__ = __repr__

    # -- names ------------------------------------------------------------------------------
    def blob_name(self, path: str) -> str:
        """The blob name that holds ``path`` (prefix included); NameNotAllowed if none can."""
        full = names.join(self.location.prefix, path)
        names.check_blob_name(full)
        return full

    def _blob_path(self, blob: str) -> str:
        return f"/{self.location.container}/{quote(blob, safe='/~')}"

    # -- Target -----------------------------------------------------------------------------
    def check(self) -> None:
        try:
            self._container.create_container()
        except ResourceExistsError:
            pass
        except Exception as exc:  # noqa: BLE001 - classified below
            err = translate(exc, f"create container {self.url}")
            if not isinstance(err, AuthenticationFailed):
                raise BackendUnavailable(str(err)) from None
            if not self._has_sas:
                raise err from None
            self._probe_container()  # a container SAS may write blobs but not make containers

    def _probe_container(self) -> None:
        try:
            next(iter(self._container.list_blobs(results_per_page=1).by_page()), None)
        except Exception as exc:  # noqa: BLE001
            err = translate(exc, f"list container {self.url}")
            raise (err if isinstance(err, AuthenticationFailed) else BackendUnavailable(str(err))) from None

    def stat(self, path: str) -> TargetStat | None:
        blob = self.blob_name(path)
        name = blob.rpartition("/")[2]
        if self._fast is not None:
            status, headers, _ = self._fast.request("HEAD", self._blob_path(blob), {})
            if status == 404:
                return None
            if status != 200:
                raise classify(status, headers.get("x-ms-error-code"), f"stat {path}")
            meta = headers.get("x-ms-meta-" + META_MTIME)
            return TargetStat(name, int(headers.get("Content-Length", "0")), _int_or_none(meta))
        try:
            props = self._container.get_blob_client(blob).get_blob_properties()
        except ResourceNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"stat {path}") from None
        return TargetStat(name, props.size, mtime_from_metadata(props.metadata))

    def put(self, path: str, payload: Payload) -> None:
        blob = self.blob_name(path)
        meta = {META_MTIME: str(payload.mtime_ns), META_MODE: mode_text(payload.mode)}
        if payload.data is not None:
            self._put_small(path, blob, payload.data, payload.md5(), meta)
        elif self._fast is not None and payload.size <= self.single_put_max:
            self._put_streamed(path, blob, payload, meta)
        else:
            self._put_blocks(path, blob, payload, meta)

    def _put_small(self, path: str, blob: str, data: bytes, md5: bytes, meta: dict[str, str]) -> None:
        if self._fast is None:
            try:
                self._container.get_blob_client(blob).upload_blob(
                    data, overwrite=True, metadata=meta, length=len(data),
                    content_settings=ContentSettings(content_md5=bytearray(md5)))
            except Exception as exc:  # noqa: BLE001
                raise translate(exc, f"put {path}") from None
            return
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Length": str(len(data)),
                   "Content-MD5": base64.b64encode(md5).decode(),
                   "x-ms-meta-" + META_MTIME: meta[META_MTIME], "x-ms-meta-" + META_MODE: meta[META_MODE]}
        status, resp_headers, _ = self._fast.request("PUT", self._blob_path(blob), headers, data)
        if status != 201:
            raise classify(status, resp_headers.get("x-ms-error-code"), f"put {path}")

    def _put_streamed(self, path: str, blob: str, payload: Payload, meta: dict[str, str]) -> None:
        """One Put Blob streamed from the file: one request instead of a block per 8 MiB and a
        commit. The MD5 goes in the headers, so the file is read twice (the second time from
        the page cache); the service checks the body against it, so a file rewritten between
        the two reads is refused (Md5Mismatch) and nothing is stored."""
        md5 = payload.md5_ahead()
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Length": str(payload.size),
                   "Content-MD5": base64.b64encode(md5).decode(),
                   "x-ms-meta-" + META_MTIME: meta[META_MTIME], "x-ms-meta-" + META_MODE: meta[META_MODE]}
        status, resp_headers, body = self._fast.request(
            "PUT", self._blob_path(blob), headers, lambda: payload.chunks(STREAM_CHUNK, digest=False))
        if status == 201:
            return
        code = resp_headers.get("x-ms-error-code")
        # Azure says Md5Mismatch; Azurite 3.35 says InvalidOperation, "Provided contentMD5 doesn't match."
        if code == "Md5Mismatch" or (code == "InvalidOperation" and b"contentMD5" in body):
            raise SourceChanged("modified while copying (content changed between reads)")
        raise classify(status, code, f"put {path}")

    def _put_blocks(self, path: str, blob: str, payload: Payload, meta: dict[str, str]) -> None:
        client = self._container.get_blob_client(blob)
        token = secrets.token_hex(8)  # fixed-length ids, unique per attempt
        block_ids: list[str] = []
        inflight: deque[Future] = deque()
        pool = self._block_pool()
        try:
            for index, chunk in enumerate(payload.chunks(self.block_size)):
                block_id = base64.b64encode(f"{token}-{index:07d}".encode()).decode()
                block_ids.append(block_id)
                inflight.append(pool.submit(client.stage_block, block_id, chunk, length=len(chunk)))
                while len(inflight) >= self.block_parallel:
                    inflight.popleft().result()
            while inflight:
                inflight.popleft().result()
            md5 = payload.md5()  # known only now that chunks() is exhausted
            client.commit_block_list(block_ids, metadata=meta,
                                     content_settings=ContentSettings(content_md5=bytearray(md5)))
        except CopierError:
            _drain(inflight)
            raise
        except Exception as exc:  # noqa: BLE001
            _drain(inflight)
            raise translate(exc, f"put {path}") from None

    def _block_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.block_parallel * 2, thread_name_prefix="blob-blocks")
        return self._pool

    def flush(self) -> None:
        pass  # a put is durable once the service has answered it

    def make_dir(self, path: str) -> None:
        pass

    def list_files(self, dir_path: str) -> Iterator[TargetStat]:
        base = names.join(self.location.prefix, dir_path)
        start = base + "/" if base else ""
        try:
            for item in self._container.walk_blobs(name_starts_with=start or None, include=["metadata"],
                                                   delimiter="/"):
                if isinstance(item, BlobPrefix):
                    continue
                yield TargetStat(item.name[len(start):], item.size, mtime_from_metadata(item.metadata))
        except ResourceNotFoundError:
            return
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, f"list {dir_path or '/'}") from None

    def is_empty(self) -> bool:
        start = self.location.prefix.rstrip("/") + "/" if self.location.prefix else None
        try:
            pages = self._container.list_blobs(name_starts_with=start, results_per_page=1).by_page()
            return next(iter(next(pages, [])), None) is None
        except ResourceNotFoundError:
            return True
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, "list the target prefix") from None

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._service.close()


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _drain(inflight: deque[Future]) -> None:
    """Wait for blocks still in flight so no upload outlives a failed put."""
    for fut in inflight:
        fut.cancel()
    for fut in inflight:
        try:
            fut.result()
        except BaseException:  # noqa: BLE001 - the put already failed
            pass


def _sdk_knows(version: str) -> bool:
    from azure.storage.blob import _serialize

    return version in getattr(_serialize, "_SUPPORTED_API_VERSIONS", [])


API_VERSION_OK = _sdk_knows(API_VERSION)
