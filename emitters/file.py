"""The JSON lines sink: ``FileEmitter``, with size-based rotation.

Each line of the file is one event, exactly as ``Event.model_dump_json()`` writes
it, so ``Event.model_validate_json(line)`` reads it back.
"""

from emitters._file import FileEmitter, from_environment

__all__ = ["FileEmitter", "from_environment"]
