"""Runs: a flow run or a task run, and the runs active at one moment.

A run's related resource (``flow-run.<id>`` or ``task-run.<id>``) carries the run's
labels and a ``source`` label saying where the run came from: ``eventblocks`` for an
explicit ``flow_run()``/``task_run()`` scope, ``environment`` for the environment
variables, or the name a run context provider gives (``prefect``, ``airflow``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from emitters._model import MAX_NAME, RelatedResource
from emitters._text import mend_text

__all__ = [
    "MAX_RUN_ID",
    "SOURCE_LABEL",
    "Run",
    "RunContext",
    "RunKind",
    "run_text_problem",
]

RunKind = Literal["flow-run", "task-run"]

# A run's resource id is "<kind>.<id>", at most MAX_NAME characters.
MAX_RUN_ID = MAX_NAME - len("task-run.")

SOURCE_LABEL = "source"
"""The label of a run's related resource that says where the run came from."""


def run_text_problem(value: str, limit: int) -> str | None:
    """Say why ``value`` cannot be a run's id or name, or return None.

    The length counts the text as events carry it, with lone surrogates escaped.
    """
    value = mend_text(value)
    if len(value) > limit:
        return f"is {len(value)} characters long; at most {limit} are allowed"
    if "\x00" in value:
        return "contains a NUL character (\\x00)"
    return None


@dataclass(frozen=True)
class Run:
    """One flow run or task run.

    Attributes:
        id: The run's id: the one given, else a new UUIDv7 string. Runs found in
            an orchestrator keep the orchestrator's own id.
        name: The run's name, such as the flow's name.
        labels: String labels attached to every event of the run.
        kind: ``"flow-run"`` or ``"task-run"``.
        source: Where the run came from: ``"eventblocks"`` (an explicit scope),
            ``"environment"``, or a run context provider's name such as
            ``"prefect"`` or ``"airflow"``. Events carry it as the ``source`` label
            of the run's related resource.
    """

    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    kind: RunKind = "flow-run"
    source: str = "eventblocks"

    @functools.cached_property
    def related(self) -> RelatedResource:
        """This run as a related resource (``flow-run.<id>``, role = its kind)."""
        return RelatedResource(
            id=f"{self.kind}.{self.id}",
            role=self.kind,
            name=self.name,
            labels={**self.labels, SOURCE_LABEL: self.source},
        )


@dataclass(frozen=True)
class RunContext:
    """The runs active at one moment: a flow run, a task run, both or neither.

    A run context provider returns one of these (see
    :class:`emitters.RunContextProvider`); return the same object while the same
    runs are active, so that the events of many calls share their parts.

    Attributes:
        flow: The flow run, or None.
        task: The task run (inside ``flow`` when both are given), or None.
        related: The runs as related resources, flow run first (computed).
    """

    flow: Run | None = None
    task: Run | None = None
    related: tuple[RelatedResource, ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        for what, run, kind in (
            ("flow", self.flow, "flow-run"),
            ("task", self.task, "task-run"),
        ):
            if run is not None and (not isinstance(run, Run) or run.kind != kind):
                raise TypeError(
                    f"RunContext.{what} must be a Run of kind {kind!r} or None, "
                    f"not {run!r}"
                )
        related = tuple(
            run.related for run in (self.flow, self.task) if run is not None
        )
        object.__setattr__(self, "related", related)

    @classmethod
    def of(cls, flow: Run | None, task: Run | None) -> RunContext:
        """Return the context of ``flow`` and ``task`` (either may be None)."""
        return cls(flow, task)
