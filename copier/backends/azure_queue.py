"""WorkQueue on Azure Storage Queues.

Each slot's queue ``copier-<slug>-<hash8>-<slot>`` has a companion dead-letter queue with
the same name plus ``-dl``; a dead letter is a JSON envelope (reason, dequeue count, body).
``dead_letter`` puts the envelope first and then deletes the original: if that delete finds
the receipt stale or the message gone, the envelope is taken back, so a dead letter is kept
only by the holder of the current receipt (a crash in between can leave a duplicate, which
``dead_letters`` drops by message id).

Every SDK error is translated here; messages name the endpoint host, never a key or SAS, and
the SDK exception is not chained because its text can carry a SAS-signed URL.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlparse

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.queue import LinearRetry, QueueClient, QueueServiceClient

from copier.backends.queues import MAX_RECEIVE, check_body, decode_dead_letter, encode_dead_letter
from copier.errors import AuthenticationFailed, BackendUnavailable, ConfigError, CopierError, TransientError
from copier.models import DeadLetter, Delivery

T = TypeVar("T")

DEAD_LETTER_SUFFIX = "-dl"
MAX_NAME = 63 - len(DEAD_LETTER_SUFFIX)  # the dead-letter queue's name must fit too
AUTH_CODES = {"AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch",
              "InsufficientAccountPermissions"}
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
STALE_CODES = {"PopReceiptMismatch", "MessageNotFound"}


def queue_name(job: str, slot: int) -> str:
    """A valid Azure queue name for one slot of one job; the hash of the exact job name keeps
    jobs whose slugs collide apart."""
    if slot < 0:
        raise ValueError(f"slot must be >= 0, not {slot}")
    digest = hashlib.sha256(job.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    tail = f"-{digest}-{slot}"
    room = MAX_NAME - len("copier-") - len(tail)
    slug = re.sub(r"[^a-z0-9]+", "-", job.lower())[:room].strip("-") or "job"
    return f"copier-{slug}{tail}"


def _code(exc: AzureError) -> str:
    """The service's error code as plain text (the SDK gives a str enum or a str)."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _host(url: str) -> str:
    parsed = urlparse(url)
    return parsed.netloc.rsplit("@", 1)[-1] or "the queue endpoint"


def _translate(exc: AzureError, host: str, what: str, *, starting: bool = False) -> CopierError:
    """The copier error for one SDK error, built without the SDK's text."""
    where = f"{what} on {host}"
    if isinstance(exc, ClientAuthenticationError):
        return AuthenticationFailed(f"{where}: credentials refused ({_code(exc) or 403})")
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = _code(exc)
        if exc.status_code == 403 or code in AUTH_CODES:
            return AuthenticationFailed(f"{where}: credentials refused ({code or exc.status_code})")
        if exc.status_code in TRANSIENT_STATUS:
            return TransientError(f"{where}: service answered {exc.status_code} {code}".rstrip())
        return BackendUnavailable(f"{where}: service answered {exc.status_code} {code}".rstrip())
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        kind = "unreachable" if isinstance(exc, ServiceRequestError) else "connection failed"
        if starting:
            return BackendUnavailable(f"{where}: queue endpoint {kind}")
        return TransientError(f"{where}: queue endpoint {kind}")
    return TransientError(f"{where}: {type(exc).__name__}")


class AzureWorkQueue:
    def __init__(self, client: QueueClient, dead_client: QueueClient, host: str) -> None:
        self.name = client.queue_name
        self._client = client
        self._dead = dead_client
        self._host = host

    def _call(self, what: str, fn: Callable[[], T], *, starting: bool = False) -> T:
        try:
            return fn()
        except AzureError as exc:
            raise _translate(exc, self._host, f"{what} {self.name}", starting=starting) from None

    def create(self) -> None:
        for client in (self._client, self._dead):
            try:
                client.create_queue()
            except ResourceExistsError as exc:
                if _code(exc) == "QueueBeingDeleted":  # a destroyed queue's name is held ~30 s
                    raise TransientError(f"create queue {client.queue_name} on {self._host}: "
                                         "queue is still being deleted") from None
            except AzureError as exc:
                raise _translate(exc, self._host, f"create queue {client.queue_name}", starting=True) from None

    def put(self, body: str) -> None:
        check_body(body)
        self._call("put message on", lambda: self._client.send_message(body))

    def receive(self, max_messages: int, visibility_timeout_s: float) -> list[Delivery]:
        n = min(max_messages, MAX_RECEIVE)
        if n < 1:
            return []
        vt = max(1, int(math.ceil(visibility_timeout_s)))

        def first_page() -> list:
            pages = self._client.receive_messages(
                messages_per_page=n, visibility_timeout=vt, max_messages=n).by_page()
            return list(next(pages, []))  # one service call, never a second page

        return [Delivery(message_id=m.id, receipt=m.pop_receipt, dequeue_count=m.dequeue_count, body=m.content)
                for m in self._call("receive from", first_page)]

    def delete(self, delivery: Delivery) -> None:
        self._delete(self._client, delivery.message_id, delivery.receipt, "delete message from")

    def _delete(self, client: QueueClient, message_id: str, receipt: str, what: str) -> bool:
        """True if deleted; False if already gone or the receipt is stale."""
        try:
            client.delete_message(message_id, receipt)
            return True
        except ResourceNotFoundError:
            return False
        except HttpResponseError as exc:
            if exc.status_code in (400, 404) and _code(exc) in STALE_CODES:
                return False
            raise _translate(exc, self._host, f"{what} {client.queue_name}") from None
        except AzureError as exc:
            raise _translate(exc, self._host, f"{what} {client.queue_name}") from None

    def extend(self, delivery: Delivery, visibility_timeout_s: float) -> Delivery:
        vt = max(0, int(math.ceil(visibility_timeout_s)))
        try:
            updated = self._client.update_message(
                delivery.message_id, pop_receipt=delivery.receipt, visibility_timeout=vt)
        except HttpResponseError as exc:
            if exc.status_code in (400, 404) and (_code(exc) in STALE_CODES
                                                  or isinstance(exc, ResourceNotFoundError)):
                raise TransientError(f"extend on {self.name}: receipt is stale") from None
            raise _translate(exc, self._host, f"extend message on {self.name}") from None
        except AzureError as exc:
            raise _translate(exc, self._host, f"extend message on {self.name}") from None
        return Delivery(delivery.message_id, updated.pop_receipt, delivery.dequeue_count, delivery.body)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        envelope = encode_dead_letter(delivery.message_id, delivery.body, reason, delivery.dequeue_count)
        kept = self._call("put dead letter on", lambda: self._dead.send_message(envelope))
        if not self._delete(self._client, delivery.message_id, delivery.receipt, "delete message from"):
            self._delete(self._dead, kept.id, kept.pop_receipt, "take back dead letter from")

    def dead_letters(self) -> list[DeadLetter]:
        """Read by receiving (peek stops at 32) and making each visible again at once."""
        seen: dict[str, DeadLetter] = {}
        held = []
        while True:
            page = self._call("read dead letters of", lambda: list(next(self._dead.receive_messages(
                messages_per_page=MAX_RECEIVE, visibility_timeout=30, max_messages=MAX_RECEIVE).by_page(), [])))
            if not page:
                break
            held.extend(page)
            for m in page:
                letter = decode_dead_letter(m.content)
                seen.setdefault(letter.message_id, letter)
        for m in held:
            try:
                self._dead.update_message(m.id, pop_receipt=m.pop_receipt, visibility_timeout=0)
            except ResourceNotFoundError:
                pass
            except AzureError as exc:
                raise _translate(exc, self._host, f"release dead letter on {self._dead.queue_name}") from None
        return list(seen.values())

    def depth(self) -> int:
        try:
            props = self._client.get_queue_properties()
        except ResourceNotFoundError:
            return 0  # never created (its worker died first): nothing in it
        except AzureError as exc:
            raise _translate(exc, self._host, f"get properties of {self._client.queue_name}") from None
        return int(props.approximate_message_count or 0)

    def destroy(self) -> None:
        for client in (self._client, self._dead):
            try:
                client.delete_queue()
            except ResourceNotFoundError:
                pass
            except AzureError as exc:
                raise _translate(exc, self._host, f"delete queue {client.queue_name}") from None


class AzureQueueFactory:
    """Queues of one job on one storage account. The SDK retries each call a little (two
    retries, about a second apart) so a dead endpoint fails in seconds; callers retry more."""

    def __init__(
        self,
        connection_string: str | None = None,
        *,
        job: str,
        account_url: str | None = None,
        credential=None,
        api_version: str | None = None,
        retry_total: int = 2,
        connection_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
    ) -> None:
        options = {
            "retry_policy": LinearRetry(backoff=1, random_jitter_range=0.5, retry_total=retry_total),
            "connection_timeout": connection_timeout_s,
            "read_timeout": read_timeout_s,
        }
        if api_version:
            options["api_version"] = api_version
        try:
            if connection_string:
                self._service = QueueServiceClient.from_connection_string(connection_string, **options)
            elif account_url:
                self._service = QueueServiceClient(account_url, credential=credential, **options)
            else:
                raise ValueError("give a connection string or an account URL")
        except (ValueError, AzureError):
            # The SDK's message may quote the connection string; say only what is wrong.
            raise ConfigError("invalid Azure queue connection settings") from None
        self.job = job
        self.host = _host(self._service.url)

    def queue(self, slot: int) -> AzureWorkQueue:
        name = queue_name(self.job, slot)
        return AzureWorkQueue(self._service.get_queue_client(name),
                              self._service.get_queue_client(name + DEAD_LETTER_SUFFIX), self.host)
