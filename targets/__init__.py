"""Where files land: one module per kind of storage behind ``copier.protocols.Target``.

``open_target(url)`` reads a target URL (see ``targets.url`` for the forms and where the
credentials come from) and returns the target for it:

- ``targets.local.LocalTarget``        a local or mounted folder
- ``targets.azure_blob.AzureBlobTarget``  block blobs in a container (lean fast path for small files)
- ``targets.azure_files.AzureFilesTarget`` an Azure Files share

Every target passes one contract suite (tests/contract/test_target_contract.py) and
translates its SDK's exceptions into ``copier.errors`` at this boundary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from copier.protocols import Target
from targets.url import redact

__all__ = ["open_target", "redact"]


def open_target(url: str, env: Mapping[str, str] = os.environ) -> Target:
    """The target named by ``url``. Raises ConfigError for a URL or credential it cannot use."""
    from targets.url import parse_target_url, resolve_credential

    location = parse_target_url(url, env)
    if location.kind == "local":
        from targets.local import LocalTarget

        return LocalTarget(location.path)
    credential = resolve_credential(location, env)
    if location.kind == "blob":
        from targets.azure_blob import AzureBlobTarget

        return AzureBlobTarget(location, credential)
    from targets.azure_files import AzureFilesTarget

    return AzureFilesTarget(location, credential)
