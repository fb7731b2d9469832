"""What the store benchmarks share: the block documents their runs call.

``bench_runs.py`` writes rows for them directly and ``bench_ui.py`` writes events
through the store, over the same documents, so that their figures describe stores
of the same shape.
"""

from __future__ import annotations

import uuid
from typing import NamedTuple

DOCUMENTS = 200


class Document(NamedTuple):
    """A saved S3 bucket document, and the credentials document it holds."""

    id: str
    name: str
    credentials: tuple[str, str] | None
    """(id, name) of its nested credentials; one document in two has some,
    each set shared by 5 documents."""


def documents() -> list[Document]:
    """The ``DOCUMENTS`` documents, ``doc-0`` to ``doc-199``."""
    docs = []
    for i in range(DOCUMENTS):
        credentials = None
        if i % 2 == 0:
            credentials = (
                f"block-document.{uuid.UUID(int=10**6 + i // 10)}",
                f"cred-{i // 10}",
            )
        docs.append(
            Document(f"block-document.{uuid.UUID(int=i + 1)}", f"doc-{i}", credentials)
        )
    return docs
