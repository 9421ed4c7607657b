"""The command line reading a records store directly, without asking a running mesh.

Records hold what clients sent, so the store is private to the mesh's user (0600 files in a
0700 folder; a PostgreSQL role of its own). A command given `--store` says it is reading files
(or a database) directly, which needs that access, and when the access is missing says how to
get the same answer from the running mesh instead.
"""

from __future__ import annotations

import sys

from meshserve.sidecars.records.store import RecordStore, open_store, redacted, store_url_for


class StoreAccessError(RuntimeError):
    pass


def open_records_store(text: str) -> RecordStore:
    url = store_url_for(text)
    print(f"meshserve: reading the records store {redacted(url)} directly, not through a mesh: this needs read "
          "access to it (the mesh's files are private to the user that runs it)", file=sys.stderr)
    try:
        return open_store(url)
    except PermissionError as exc:
        raise StoreAccessError(_advice(url, exc)) from None
    except Exception as exc:  # sqlite3.OperationalError, psycopg errors: the same advice
        if "permission" in str(exc).lower() or "unable to open" in str(exc).lower() or "readonly" in str(exc).lower():
            raise StoreAccessError(_advice(url, exc)) from None
        raise


def _advice(url: str, exc: BaseException) -> str:
    return (f"cannot read {redacted(url)} ({exc}); run the command as the user that runs the mesh, or ask the "
            "running mesh instead (drop --store; --address HOST:PORT with its credentials)")
