"""The run context provider protocol: one method that names the current runs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from emitters._run import RunContext

__all__ = ["RunContextProvider"]


@runtime_checkable
class RunContextProvider(Protocol):
    """Finds the runs the calling code belongs to, in an orchestrator's own state.

    Block calls and :func:`emitters.emit_event` made outside an explicit
    :func:`emitters.flow_run`/:func:`emitters.task_run` scope ask each provider in
    turn, on the caller's thread, and take the first answer that is not None;
    without one, the environment variables name the flow run.

    The one method, :meth:`current_run_context`, runs on every such call, so:

    - It is cheap: it reads a context variable or a cached value. It imports
      nothing and does no I/O. To learn whether a library is in use, it looks in
      ``sys.modules`` instead of importing the library.
    - It returns the same :class:`~emitters.RunContext` object for as long as the
      same runs are active (the events of many calls then share their parts), or
      None when it knows of no run.
    - It should not raise: an exception is logged (at most once a minute) and the
      next provider is asked.

    The runs it returns say where they came from in :attr:`emitters.Run.source`
    (``"prefect"``, ``"airflow"``, or your orchestrator's name) and keep the
    orchestrator's own ids, so that a user can paste them into its UI.

    Register a provider with :func:`emitters.register_run_context_provider`, or
    name its class (built with no arguments) or an instance in the
    ``eventblocks.run_context`` entry point group of your package.
    """

    def current_run_context(self) -> RunContext | None:
        """Return the runs active for the caller, or None if there are none."""
        ...
