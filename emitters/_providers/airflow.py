"""Airflow's DAG runs and task instances, from the variables Airflow sets.

While a task instance runs, Airflow puts ``AIRFLOW_CTX_DAG_ID``,
``AIRFLOW_CTX_DAG_RUN_ID``, ``AIRFLOW_CTX_TASK_ID`` and ``AIRFLOW_CTX_TRY_NUMBER``
in the environment of the process that runs it (and passes them on to the
processes it starts, such as a ``BashOperator``'s). The DAG run is the flow run,
named after the DAG; the task instance, with its try number, is the task run.

A DAG run's id (``scheduled__2026-01-01T00:00:00+00:00``) is unique only within its
DAG, so the flow run's id is ``<dag id>/<dag run id>`` and the task run's
``<dag id>/<dag run id>/<task id>/<try number>``; the runs keep Airflow's own values
in the labels ``dag-id``, ``dag-run-id``, ``task-id`` and ``try-number``.

The variables are read on the caller's thread at every block call, as the other
providers are, because Airflow can run several task instances one after the other
in one process (``dag.test()``). The environment mapping's own lookup encodes the
name and
raises and catches ``KeyError`` for a missing variable, which costs more than a
whole block call; its underlying dictionary answers in tens of nanoseconds, so
that is what is read where the platform has one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from emitters._model import MAX_NAME
from emitters._run import MAX_RUN_ID, Run, RunContext
from emitters._settings import environment_reader
from emitters._text import mend_text

__all__ = ["AirflowRunContextProvider"]

SOURCE = "airflow"
DAG_ID = "AIRFLOW_CTX_DAG_ID"
DAG_RUN_ID = "AIRFLOW_CTX_DAG_RUN_ID"
TASK_ID = "AIRFLOW_CTX_TASK_ID"
TRY_NUMBER = "AIRFLOW_CTX_TRY_NUMBER"
_NAMES = (DAG_ID, DAG_RUN_ID, TASK_ID, TRY_NUMBER)


def _fit(text: str, limit: int) -> str:
    """Return ``text``, or its start and a digest of the whole if it is too long."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[: limit - 17]}~{digest}"


def _clean(text: str) -> str:
    # As events carry it: undecodable bytes escaped, and no NUL (which an event
    # store's text column cannot hold).
    return mend_text(text).replace("\x00", "")


class AirflowRunContextProvider:
    """The DAG run and task instance named by Airflow's ``AIRFLOW_CTX_*`` variables."""

    def __init__(self) -> None:
        self._get, keys, self._decode = environment_reader(_NAMES)
        self._dag_key, self._run_key, self._task_key, self._try_key = keys
        self._last: tuple[tuple[Any, ...], RunContext | None] = ((), None)

    def current_run_context(self) -> RunContext | None:
        """Return the DAG run and task instance running this code, or None."""
        get = self._get
        run_id = get(self._run_key)
        if run_id is None:
            return None
        raw = (get(self._dag_key), run_id, get(self._task_key), get(self._try_key))
        last = self._last
        if last[0] == raw:
            return last[1]
        answer = self._build(raw)
        self._last = (raw, answer)
        return answer

    def _build(self, raw: tuple[Any, ...]) -> RunContext | None:
        dag_id, run_id, task_id, try_number = (
            None if value is None else _clean(self._decode(value)) for value in raw
        )
        if not dag_id or not run_id:
            return None
        flow_labels = {"dag-id": dag_id, "dag-run-id": run_id}
        flow = Run(
            _fit(f"{dag_id}/{run_id}", MAX_RUN_ID),
            _fit(dag_id, MAX_NAME),
            flow_labels,
            "flow-run",
            SOURCE,
        )
        task = None
        if task_id:
            task_labels = {**flow_labels, "task-id": task_id}
            task_key = f"{dag_id}/{run_id}/{task_id}"
            if try_number:
                task_labels["try-number"] = try_number
                task_key = f"{task_key}/{try_number}"
            task = Run(
                _fit(task_key, MAX_RUN_ID),
                _fit(task_id, MAX_NAME),
                task_labels,
                "task-run",
                SOURCE,
            )
        return RunContext(flow, task)
