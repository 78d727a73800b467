"""One error taxonomy for every part of copier.

    CopierError
    ├── TransientError        retry with backoff (throttling, 5xx, timeouts, resets)
    ├── PermanentError        record a failure for this item and move on
    │   ├── SourceError           unreadable, vanished, changed while read, special file
    │   ├── NameNotAllowed        the target cannot hold this name
    │   └── PoisonMessage         a queue message that cannot be decoded
    └── FatalError            stop the process with one clear line
        ├── ConfigError           bad flags, missing settings, bad URL
        ├── JobMismatch           --job exists with another source or target
        ├── BackendUnavailable    Redis / queue service / target unreachable, full or failing
        └── AuthenticationFailed  credentials refused

SDK exceptions (``redis.*``, ``azure.core.*``) are translated into these where the SDK
is called — in ``targets/`` and ``copier/backends/`` — and nowhere else.
Messages never carry a secret: build them from redacted URLs (``targets.url.redact``,
``copier.backends.redis_state.redact_url``); ``copier.log.scrub`` is the last line of defence.
"""

from __future__ import annotations


class CopierError(Exception):
    """Root of every error copier raises on purpose."""


class TransientError(CopierError):
    """Worth retrying: the same call may succeed later."""


class PermanentError(CopierError):
    """Retrying will not help; the item becomes a failure record and the job goes on."""


class SourceError(PermanentError):
    """The source file or directory cannot be read as it was listed."""


class SourceChanged(SourceError):
    """The file vanished or changed size or mtime while it was being copied."""


class NameNotAllowed(PermanentError):
    """The target cannot hold this name (characters, length, trailing dot...)."""


class PoisonMessage(PermanentError):
    """A queue message that cannot be decoded."""


class FatalError(CopierError):
    """The process cannot go on; the CLI prints one line and exits non-zero."""


class ConfigError(FatalError):
    """Bad flags, environment or URL."""


class JobMismatch(FatalError):
    """The job exists already with a different source or target."""


class BackendUnavailable(FatalError):
    """A coordination backend or the target could not be reached, or the target is full or
    reports write errors."""


class AuthenticationFailed(FatalError):
    """The service refused the credentials."""
