"""The task runner: jobs and their callbacks are freed when they end, interactive jobs always
find a thread, failures keep their exception type, and stopping cancels later jobs too."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from cnn_desktop.gui.runner import TaskContext, TaskHandle, TaskRunner

WAIT_MS = 10_000


class Payload:
    """Stands for something heavy a job or a callback holds (a model, a session)."""


@pytest.fixture
def runner(qtbot):
    runner = TaskRunner()
    yield runner
    assert runner.shutdown(30)


def wait_ended(qtbot, runner: TaskRunner) -> None:
    qtbot.waitUntil(lambda: not runner.active, timeout=WAIT_MS)


def test_an_ended_job_frees_its_function_its_callbacks_and_its_handle(qtbot, runner):
    held_by_job, held_by_callback = Payload(), Payload()
    refs = [weakref.ref(held_by_job), weakref.ref(held_by_callback)]
    results = []

    def submit(job_payload: Payload, callback_payload: Payload) -> weakref.ref:
        def job(_context: TaskContext) -> int:
            return id(job_payload)

        handle: TaskHandle | None = None

        def on_result(value: int) -> None:  # refers to its own handle, as callbacks often do
            results.append((value, handle is not None and handle.is_cancelled, callback_payload))

        handle = runner.submit("Job", job, on_result=on_result)
        return weakref.ref(handle)

    handle_ref = submit(held_by_job, held_by_callback)
    del held_by_job, held_by_callback
    wait_ended(qtbot, runner)
    assert len(results) == 1
    results.clear()
    gc.collect()
    assert [ref() is None for ref in refs] == [True, True], "job or callback payload alive"
    assert handle_ref() is None, "the handle outlives its job"


def test_interactive_jobs_run_while_background_jobs_fill_every_thread(qtbot, runner):
    release = threading.Event()
    started = threading.Semaphore(0)

    def blocking(_context: TaskContext) -> None:
        started.release()
        release.wait(60)

    try:
        background = [runner.submit(f"Batch {i}", blocking) for i in range(8)]
        assert started.acquire(timeout=10), "no background job started"
        answers = []
        runner.submit("Preview", lambda _c: "shown", interactive=True, on_result=answers.append)
        qtbot.waitUntil(lambda: answers == ["shown"], timeout=WAIT_MS)
        assert not any(handle.done.is_set() for handle in background)
    finally:
        release.set()
    wait_ended(qtbot, runner)


def test_a_failure_says_which_exception_it_was(qtbot, runner):
    def broken(_context: TaskContext) -> None:
        raise KeyError("layer 7")

    def bad_value(_context: TaskContext) -> None:
        raise ValueError("not a model")

    told: list[str] = []
    handle = runner.submit("Explain", broken, on_error=told.append)
    with qtbot.waitSignal(runner.task_failed, timeout=WAIT_MS) as reported:
        runner.submit("Open model", bad_value)
    wait_ended(qtbot, runner)

    assert told == ["KeyError: 'layer 7'"]
    assert handle.failure is not None and handle.failure.type_name == "KeyError"
    assert 'raise KeyError("layer 7")' in handle.failure.traceback
    assert reported.args == ["Open model", "ValueError: not a model"]


def test_stop_cancels_running_jobs_and_every_later_one(qtbot, runner):
    release = threading.Event()

    def until_cancelled(context: TaskContext) -> str:
        while not context.cancel.cancelled:
            release.wait(0.01)
        return "stopped"

    outcomes: list[str] = []
    running = runner.submit("Batch", until_cancelled, on_finished=lambda: outcomes.append("a"))
    runner.stop()
    later = runner.submit("Later", lambda _c: "ran", on_result=outcomes.append)
    wait_ended(qtbot, runner)

    assert running.is_cancelled and later.is_cancelled
    assert outcomes == ["a"], "a job submitted after stop() ran"


def test_the_cores_own_errors_read_as_their_message_with_the_type_kept(qtbot, runner):
    from cnn_desktop.core.models import BundleError

    def unreadable(_context: TaskContext) -> None:
        raise BundleError("holiday.cnnmodel has no model.json")

    told: list[str] = []
    handle = runner.submit("Open model", unreadable, on_error=told.append)
    wait_ended(qtbot, runner)

    assert told == ["holiday.cnnmodel has no model.json"]
    assert handle.failure is not None and handle.failure.type_name == "BundleError"


def test_only_surprises_log_a_traceback(qtbot, runner, caplog):
    from cnn_desktop.core.imaging import ImageLoadError

    def bad_image(_context: TaskContext) -> None:
        raise ImageLoadError("broken.jpg is truncated")

    def bug(_context: TaskContext) -> None:
        raise ZeroDivisionError("division by zero")

    with caplog.at_level("INFO", logger="cnn_desktop.gui.runner"):
        runner.submit("Preview", bad_image, on_error=lambda _m: None)
        runner.submit("Explain", bug, on_error=lambda _m: None)
        wait_ended(qtbot, runner)
    by_title = {r.getMessage().split("'")[1]: r for r in caplog.records}
    assert by_title["Preview"].levelname == "INFO"
    assert "Traceback" not in by_title["Preview"].getMessage()
    assert by_title["Explain"].levelname == "ERROR"
    assert "Traceback" in by_title["Explain"].getMessage()
