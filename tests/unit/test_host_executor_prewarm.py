"""The host executor's prewarm queue: one start per function version, in the background, one at a time; an invocation
waits for a start in progress, takes a queued one off the queue; a stopped version never keeps what started for it."""

from __future__ import annotations

import threading
import time

import pytest
from dr_host_executor.prewarm import IdleCores, Prewarmer, enabled_from_env, hold_from_env


class Gate:
    """A start that blocks until released, recording that it ran."""

    def __init__(self, result="environment") -> None:
        self.result = result
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self):
        self.calls += 1
        self.entered.set()
        assert self.release.wait(10), "the test never released the start"
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def collect():
    kept: list = []
    dropped: list = []
    return kept, dropped, kept.append, dropped.append


def settle(prewarm: Prewarmer) -> None:
    for _ in range(500):
        if prewarm.pending() == 0:
            return
        threading.Event().wait(0.01)
    pytest.fail("the prewarm queue never emptied")


def queue_behind_a_running_start(prewarm: Prewarmer, adopt, discard) -> tuple[Gate, Gate]:
    """fn-a's start running (blocked until released), fn-b's queued behind it."""
    first, second = Gate("first"), Gate("second")
    prewarm.schedule("fn-a", first, adopt, discard)
    assert first.entered.wait(5)
    prewarm.schedule("fn-b", second, adopt, discard)
    return first, second


def test_enabled_from_env():
    assert enabled_from_env({}) is True
    assert enabled_from_env({"DR_LAMBDA_PREWARM": "1"}) is True
    assert enabled_from_env({"DR_LAMBDA_PREWARM": " Off "}) is False
    assert enabled_from_env({"DR_LAMBDA_PREWARM": "false"}) is False
    with pytest.raises(ValueError, match="DR_LAMBDA_PREWARM must be 1 or 0"):
        enabled_from_env({"DR_LAMBDA_PREWARM": "sometimes"})


def test_a_scheduled_start_is_adopted_once():
    prewarm = Prewarmer()
    kept, dropped, adopt, discard = collect()
    start = Gate()
    prewarm.schedule("fn-v1", start, adopt, discard)
    prewarm.schedule("fn-v1", start, adopt, discard)  # already queued or running: one per version
    start.release.set()
    settle(prewarm)
    assert kept == ["environment"] and dropped == [] and start.calls == 1 and prewarm.started == 1


def test_an_invocation_waits_for_the_start_in_progress_and_finds_it_adopted():
    prewarm = Prewarmer()
    kept, _, adopt, discard = collect()
    start = Gate()
    prewarm.schedule("fn-v1", start, adopt, discard)
    assert start.entered.wait(5)
    outcome: list = []
    waiter = threading.Thread(target=lambda: outcome.append((prewarm.claim("fn-v1", 10), list(kept))))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "the invocation did not wait for the environment being started"
    start.release.set()
    waiter.join(5)
    assert outcome == [("waited", ["environment"])]  # adopted before the invocation went on
    assert prewarm.claim("fn-v1") == "none"  # done: later invocations do not wait


def test_an_invocation_takes_a_queued_start_off_the_queue():
    prewarm = Prewarmer()
    kept, dropped, adopt, discard = collect()
    first, second = queue_behind_a_running_start(prewarm, adopt, discard)
    assert prewarm.claim("fn-b") == "cancelled"  # its invocation starts its own environment at once
    first.release.set()
    second.release.set()
    settle(prewarm)
    assert kept == ["first"] and second.calls == 0 and dropped == [] and prewarm.claimed_queued == 1


def test_a_version_stopped_while_its_environment_starts_never_keeps_it():
    prewarm = Prewarmer()
    kept, dropped, adopt, discard = collect()
    start = Gate()
    prewarm.schedule("fn-v1", start, adopt, discard)
    assert start.entered.wait(5)
    prewarm.close("fn-v1")  # updated or deleted meanwhile
    start.release.set()
    settle(prewarm)
    assert kept == [] and dropped == ["environment"]


def test_a_version_stopped_before_its_turn_is_never_started():
    prewarm = Prewarmer()
    kept, _, adopt, discard = collect()
    first, second = queue_behind_a_running_start(prewarm, adopt, discard)
    prewarm.close("fn-b")
    first.release.set()
    second.release.set()
    settle(prewarm)
    assert kept == ["first"] and second.calls == 0


def test_a_failed_start_is_not_adopted_and_the_queue_goes_on():
    prewarm = Prewarmer()
    kept, dropped, adopt, discard = collect()
    broken, fine = Gate(RuntimeError("handler import failed")), Gate("fine")
    prewarm.schedule("fn-broken", broken, adopt, discard)
    prewarm.schedule("fn-fine", fine, adopt, discard)
    broken.release.set()
    fine.release.set()
    settle(prewarm)
    assert kept == ["fine"] and dropped == []
    assert prewarm.claim("fn-broken") == "none"  # its first invocation cold-starts and reports the error itself


def test_an_environment_that_cannot_be_adopted_is_stopped():
    prewarm = Prewarmer()
    dropped: list = []

    def adopt(environment):
        raise KeyError("the pool is gone")

    start = Gate()
    start.release.set()
    prewarm.schedule("fn-v1", start, adopt, dropped.append)
    settle(prewarm)
    assert dropped == ["environment"] and prewarm.started == 0


class Machine:
    """Stands in for the idle-core reading: `idle` cores, changed by the test."""

    def __init__(self, idle: float | None) -> None:
        self.idle = idle
        self.reads = 0

    def __call__(self) -> float | None:
        self.reads += 1
        return self.idle


def wait_until(condition, what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_start_waits_while_no_core_is_idle():
    machine = Machine(idle=0.1)  # e.g. the training's Train invocations have both cores
    prewarm = Prewarmer(machine, poll_s=0.01)
    kept, _, adopt, discard = collect()
    start = Gate()
    start.release.set()
    prewarm.schedule("fn-v1", start, adopt, discard)
    assert not start.entered.wait(0.3), "a start began while no core was idle"
    assert machine.reads > 3 and prewarm.pending() == 1
    machine.idle = 1.0  # the invocations are over
    settle(prewarm)
    assert kept == ["environment"] and start.calls == 1 and prewarm.held_s >= 0.25


def test_a_start_on_a_machine_busy_for_good_goes_after_the_longest_hold():
    prewarm = Prewarmer(Machine(idle=0.0), poll_s=0.01, max_hold_s=0.2)
    kept, _, adopt, discard = collect()
    start = Gate()
    start.release.set()
    prewarm.schedule("fn-v1", start, adopt, discard)
    settle(prewarm)
    assert kept == ["environment"] and 0.2 <= prewarm.held_s < 5


@pytest.mark.parametrize("how", ["claimed", "closed"])
def test_a_held_start_taken_off_the_queue_ends_the_hold(how):
    prewarm = Prewarmer(Machine(idle=0.0), poll_s=0.01, max_hold_s=30)
    kept, dropped, adopt, discard = collect()
    start = Gate()
    prewarm.schedule("fn-v1", start, adopt, discard)
    time.sleep(0.05)
    if how == "claimed":  # its invocation cold-starts rather than wait for the machine
        assert prewarm.claim("fn-v1") == "cancelled"
    else:  # its version was updated or deleted
        prewarm.close("fn-v1")
    wait_until(lambda: prewarm.held_s > 0, "the hold did not end when its queue emptied")
    assert prewarm.held_s < 5 and start.calls == 0 and kept == dropped == []
    # the queue goes on: a later start is held and then run in its turn
    later = Gate("later")
    later.release.set()
    prewarm._idle_cores = Machine(idle=2.0)
    prewarm.schedule("fn-v2", later, adopt, discard)
    settle(prewarm)
    assert kept == ["later"]


def test_no_reading_holds_nothing():
    prewarm = Prewarmer(Machine(idle=None), poll_s=0.01)  # not Linux, or /proc/stat unreadable
    kept, _, adopt, discard = collect()
    start = Gate()
    start.release.set()
    prewarm.schedule("fn-v1", start, adopt, discard)
    settle(prewarm)
    assert kept == ["environment"] and prewarm.held_s < 1


def test_a_broken_reading_does_not_stop_the_queue():
    def broken():
        raise RuntimeError("no such counter")

    prewarm = Prewarmer(broken, poll_s=0.01)
    kept, _, adopt, discard = collect()
    first, second = Gate("first"), Gate("second")
    first.release.set()
    second.release.set()
    prewarm.schedule("fn-a", first, adopt, discard)
    prewarm.schedule("fn-b", second, adopt, discard)
    settle(prewarm)
    assert kept == ["first", "second"]


def test_a_hold_of_zero_never_reads_the_machine():
    machine = Machine(idle=0.0)
    prewarm = Prewarmer(machine, poll_s=0.01, max_hold_s=0)
    kept, _, adopt, discard = collect()
    start = Gate()
    start.release.set()
    prewarm.schedule("fn-v1", start, adopt, discard)
    settle(prewarm)
    assert kept == ["environment"] and machine.reads == 0


def test_hold_from_env():
    assert hold_from_env({}) == 30.0
    assert hold_from_env({"DR_LAMBDA_PREWARM_HOLD_S": "0"}) == 0.0
    assert hold_from_env({"DR_LAMBDA_PREWARM_HOLD_S": " 2.5 "}) == 2.5
    with pytest.raises(ValueError, match="DR_LAMBDA_PREWARM_HOLD_S must be a number"):
        hold_from_env({"DR_LAMBDA_PREWARM_HOLD_S": "soon"})
    with pytest.raises(ValueError, match="between 0 and 600"):
        hold_from_env({"DR_LAMBDA_PREWARM_HOLD_S": "-1"})


STAT = """cpu  {agg}
cpu0 {c0}
cpu1 {c1}
intr 12 3 4
"""


def test_idle_cores_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user and nice)
    stat.write_text(STAT.format(agg="0 0 0 0 0 0 0 0 0 0", c0="100 0 50 400 0 0 0 0 0 0", c1="0 0 0 400 50 0 0 0 0 0"))
    idle = IdleCores(str(stat), cpus={0, 1})
    assert idle() is None  # no window yet
    # cpu0 all busy (+100), cpu1 all idle or waiting on I/O (+100): one core idle
    stat.write_text(STAT.format(agg="9 9 9 9 9 9 9 9 9 9", c0="200 0 50 400 0 0 0 0 90 0", c1="0 0 0 480 70 0 0 0 0 0"))
    assert idle() == pytest.approx(1.0)
    # only cpu1 is ours (affinity): it stays idle, whatever cpu0 does
    mine = IdleCores(str(stat), cpus={1})
    mine()
    stat.write_text(STAT.format(agg="9 9 9 9 9 9 9 9 9 9", c0="300 0 50 400 0 0 0 0 90 0", c1="0 0 0 580 70 0 0 0 0 0"))
    assert mine() == pytest.approx(1.0)
    assert IdleCores(str(tmp_path / "absent"))() is None
    stat.write_text("garbage\n")
    assert idle() is None
