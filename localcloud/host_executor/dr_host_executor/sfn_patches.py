"""A Step Functions fix for the pinned LocalStack: an execution stopped while a Map state's iterations run ends
ABORTED, as StopExecution says it does on AWS, not FAILED.

In LocalStack 4.14 the Map's iteration worker reports the stop as a MapIterationAborted failure whose event details
are the stop's error string where a dict belongs; the Map state's error handling then raises AttributeError on it,
and the program's catch-all turns the stopped program into a `States.Runtime` error. Three stops during the
training's `Train families` all ended FAILED with "AttributeError('str' object has no attribute 'get')"
(2026-12-01, by hand; a stop before the Map ended ABORTED).

The fix is the rule AWS keeps: a stopped program stays stopped. `Environment.set_error` leaves a ProgramStopped state
(and its frames) as they are, so the execution's end reads ABORTED with its ExecutionAborted event. The Map's own
error is still logged by LocalStack.

Installed when LocalStack starts (an `on_infra_start` hook), before any execution runs."""

from __future__ import annotations

import functools
import logging

from .hooks import on_infra_start

LOG = logging.getLogger(__name__)


def _stopped_stays_stopped(environment_class, stopped_class) -> None:
    """`set_error` on an environment whose program was stopped does nothing: the stop is final. The check holds the
    environment's state lock (an RLock, which the original takes again), so a stop cannot land between the two."""
    original = environment_class.set_error
    if getattr(original, "_dr", False):
        return

    @functools.wraps(original)
    def set_error(self, error):
        with self._state_mutex:
            if isinstance(self._program_state, stopped_class):
                LOG.debug("dr: an error after the execution was stopped is not its end: %s", error)
                return None
            return original(self, error)

    set_error._dr = True
    environment_class.set_error = set_error


@on_infra_start
def dr_stepfunctions_patches() -> None:
    from localstack.services.stepfunctions.asl.eval.environment import Environment
    from localstack.services.stepfunctions.asl.eval.program_state import ProgramStopped

    _stopped_stays_stopped(Environment, ProgramStopped)
    LOG.info("dr: Step Functions patch installed (a stopped execution stays ABORTED)")
