"""The app's generation queue: one run at a time, clients served in turn, each job cancellable within a step."""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tcig.errors import TCIGError

logger = logging.getLogger(__name__)

MAX_QUEUED_PER_CLIENT = 4
"""Jobs one client (browser tab) may have waiting; more are refused, so no one can fill the queue."""

KEEP_FINISHED = 200
"""Finished jobs kept for their status and preview; older ones are forgotten (their files stay)."""


class Cancelled(Exception):
    """Raised inside a run, from its progress callback, when its job was cancelled."""


@dataclass
class Job:
    """One generation request and what is known of its run. ``state``: queued, running, done, failed, cancelled."""

    client: str
    request: Any
    number: int = 0
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    state: str = "queued"
    stage: str | None = None
    step: int = 0
    steps: int = 0
    cycle: int = 0
    """The polish cycle a ``stage2`` or ``cycle`` step belongs to (0: the first refinement)."""
    preview: bytes | None = None
    preview_version: int = 0
    result: dict | None = None
    outlined: list[bytes] = field(default_factory=list)
    """The final images with the layout outlined (PNG), for the page."""
    error: str | None = None
    created: float = field(default_factory=time.time)
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def progress(self, stage: str, step: int = 0, steps: int = 0, cycle: int = 0) -> None:
        """Record progress; raises :class:`Cancelled` once the job was cancelled (call it between steps)."""
        self.stage, self.step, self.steps, self.cycle = stage, step, steps, cycle
        if self.cancel_requested.is_set():
            raise Cancelled

    def set_preview(self, png: bytes) -> None:
        self.preview = png
        self.preview_version += 1


class JobQueue:
    """Runs ``run(job) -> result`` for one job at a time on a worker thread.

    Of the waiting jobs, the next is the oldest of the client that has had the fewest runs since the queue was last
    idle, so one person's many requests cannot starve another's single one.

    Args:
        run: does the work; it reports progress through :meth:`Job.progress` and returns the job's result.
        max_per_client: jobs one client may have waiting.
    """

    def __init__(self, run: Callable[[Job], dict], max_per_client: int = MAX_QUEUED_PER_CLIENT) -> None:
        self._run = run
        self._max_per_client = max_per_client
        self._lock = threading.Condition()
        self._waiting: dict[str, list[Job]] = {}  # client -> its waiting jobs, oldest first
        self._served: dict[str, int] = {}  # client -> runs started since the queue was last idle
        self._jobs: dict[str, Job] = {}
        self._running: Job | None = None
        self._numbers = itertools.count()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="tcig-app-worker", daemon=True)
        self._worker.start()

    def submit(self, client: str, request: Any) -> Job:
        """Queue a request; a client with :data:`MAX_QUEUED_PER_CLIENT` jobs waiting is refused."""
        with self._lock:
            if self._closed:
                raise TCIGError("the app is shutting down")
            mine = self._waiting.setdefault(client, [])
            if len(mine) >= self._max_per_client:
                raise TCIGError(f"you have {len(mine)} runs waiting already; wait for one to finish or cancel one")
            job = Job(client, request, number=next(self._numbers))
            mine.append(job)
            self._jobs[job.id] = job
            self._forget_old()
            self._lock.notify_all()
            return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a waiting job at once, or ask a running one to stop at its next step."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.finished:
                return job
            job.cancel_requested.set()
            if job in self._waiting.get(job.client, []):
                self._take(job)
                job.state = "cancelled"
            return job

    def position(self, job: Job) -> int:
        """0 for the running job, n for the n-th waiting one in serving order, -1 for a finished one."""
        with self._lock:
            if job is self._running:
                return 0
            order = self._order()
            return order.index(job) + 1 if job in order else -1

    def status(self, job: Job) -> dict:
        """What the page shows of a job."""
        return {
            "id": job.id,
            "state": job.state,
            "position": self.position(job),
            "stage": job.stage,
            "step": job.step,
            "steps": job.steps,
            "cycle": job.cycle,
            "cycles": getattr(job.request, "cycles", 0),
            "preview_version": job.preview_version,
            "result": job.result,
            "error": job.error,
        }

    def close(self, timeout: float = 5.0) -> None:
        """Cancel everything and stop the worker."""
        with self._lock:
            self._closed = True
            for job in self._jobs.values():
                job.cancel_requested.set()
            self._lock.notify_all()
        self._worker.join(timeout)

    def _order(self) -> list[Job]:
        """The waiting jobs in the order they will run (if no other arrives)."""
        served = dict(self._served)
        lines = {client: list(jobs) for client, jobs in self._waiting.items() if jobs}
        order = []
        while lines:
            client = min(lines, key=lambda c: (served.get(c, 0), lines[c][0].number))
            order.append(lines[client].pop(0))
            served[client] = served.get(client, 0) + 1
            if not lines[client]:
                del lines[client]
        return order

    def _next(self) -> Job | None:
        with self._lock:
            while not self._closed:
                order = self._order()
                if order:
                    job = order[0]
                    self._take(job)
                    self._served[job.client] = self._served.get(job.client, 0) + 1
                    self._running, job.state = job, "running"
                    return job
                self._served.clear()  # idle: everyone starts even again
                self._lock.wait()
            return None

    def _take(self, job: Job) -> None:
        """Remove a waiting job (the caller holds the lock); a client with none left leaves the line."""
        waiting = self._waiting[job.client]
        waiting.remove(job)
        if not waiting:
            del self._waiting[job.client]

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                job.result = self._run(job)
                job.state = "done"
            except Cancelled:
                job.state = "cancelled"
                logger.info("job %s cancelled", job.id)
            except TCIGError as err:
                job.error, job.state = str(err), "failed"
            except Exception as err:  # the app must keep serving: report the failure in the page and in the log
                logger.exception("job %s failed", job.id)
                job.error, job.state = f"internal error: {type(err).__name__}: {err}"[:500], "failed"
            finally:
                with self._lock:
                    self._running = None

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if job.finished]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]
