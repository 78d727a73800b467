"""copier: move huge file trees to Azure Blob Storage and Azure Files, and back.

Reading order of the main flow:

1. ``copier/cli.py``            the commands (seed, control, work, status, failures, copy)
2. ``controller/seeder.py``     walk: claim a directory node, list one page, commit it
3. ``controller/dealer.py``     deal file items in batches over the worker slots' queues
4. ``workers/worker.py``        receive batches, copy each item, record the outcome once
5. ``copier/transfer.py``       the one copy routine: skip check, read, put, verify
6. ``targets/``                 local filesystem, Azure Blob, Azure Files behind ``Target``

Interfaces live in ``copier/protocols.py``; values in ``copier/models.py``; errors in
``copier/errors.py``. State and queue backends (Redis, SQLite, Azure Storage Queues)
live in ``copier/backends/``.
"""

__version__ = "0.1.0"
