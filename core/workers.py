"""The delivery process: the workers, their channels and the HTTP API, run together.

``cadence deliver`` (and later ``cadence run``) call :func:`run_delivery`. The
channels served are those whose settings are complete: e-mail, in-app and
file always, SMS and webhooks once their URL (and the webhook's secret) is
set; messages of other channels wait in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import signal
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection

from channels import open_channels
from core.db import Store, open_store
from core.delivery import DeliveryStats, DeliveryWorker
from core.errors import ConfigError, DeliveryError
from core.event_loop import run_on_fast_loop
from core.program.model import CHANNEL_NAMES
from core.settings import Settings
from core.templates import Templates


def configured_channels(settings: Settings) -> list[str]:
    """The channels whose settings let them send."""
    channels = settings.channels
    names = ["email", "in_app", "file"]
    if channels.sms.url:
        names.append("sms")
    if channels.webhook.url and channels.webhook.secret:
        names.append("webhook")
    return [name for name in CHANNEL_NAMES if name in names]


async def run_delivery(
    store: Store,
    settings: Settings,
    *,
    channels: Sequence[str] | None = None,
    until_idle: bool = False,
    serve_http: bool = True,
    stop: asyncio.Event | None = None,
    processes: int = 1,
) -> DeliveryStats:
    """Deliver until SIGINT/SIGTERM (or ``stop``), or with ``until_idle`` until nothing is
    left to send now; with ``serve_http`` the HTTP API runs beside the workers.

    ``processes`` above 1 starts that many workers in all, each in its own process with
    its own connections (``channels.email.connections`` each): one process sends on
    one core, and the outbox's leases let any number of workers share the queue.
    """
    names = list(channels) if channels else configured_channels(settings)
    unknown = sorted(set(names) - set(CHANNEL_NAMES))
    if unknown:
        raise ConfigError(
            f"unknown channel {', '.join(unknown)}; channels are {', '.join(CHANNEL_NAMES)}"
        )
    stop = stop or asyncio.Event()
    helpers = [_WorkerProcess(settings, names, until_idle) for _ in range(processes - 1)]
    with _stopping_on_signals(stop):
        api = _start_api(store, settings) if serve_http else None
        try:
            stats = await _deliver_here(store, settings, names, until_idle, stop)
            for helper in helpers:
                if stop.is_set():
                    helper.stop()
                stats.add(await helper.result())
            return stats
        finally:
            for helper in helpers:
                helper.stop()
            if api is not None:
                api.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await api


async def _deliver_here(
    store: Store, settings: Settings, names: Sequence[str], until_idle: bool, stop: asyncio.Event
) -> DeliveryStats:
    """One worker in this process; its stats include how much its memory grew."""
    templates = Templates(settings.resolve(settings.templates_dir), settings.templates)
    worker = DeliveryWorker(store, settings, open_channels(settings, store, names), templates)
    before = resident_memory_mb()
    stats = await worker.run(until_idle=until_idle, stop=stop)
    stats.rss_mb_growth = resident_memory_mb() - before
    return stats


class _WorkerProcess:
    """A delivery worker in a child process, its stats sent back when it ends."""

    def __init__(self, settings: Settings, names: Sequence[str], until_idle: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._results, sender = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_worker_process_main,
            args=(settings, list(names), until_idle, sender),
            name="cadence-delivery",
            daemon=True,
        )
        self._process.start()
        sender.close()

    def stop(self) -> None:
        """Ask the worker to finish its batches in flight and return (SIGTERM)."""
        if self._process.is_alive():
            self._process.terminate()

    async def result(self) -> DeliveryStats:
        loop = asyncio.get_running_loop()
        stats = DeliveryStats()
        with contextlib.suppress(EOFError):
            stats = await loop.run_in_executor(None, self._results.recv)
        await loop.run_in_executor(None, self._process.join)
        if self._process.exitcode not in (0, -signal.SIGTERM):
            raise DeliveryError(
                f"a delivery worker process ended with exit code {self._process.exitcode}; "
                "its messages return to the queue when their leases run out"
            )
        return stats


def _worker_process_main(
    settings: Settings, names: list[str], until_idle: bool, results: Connection
) -> None:
    async def work() -> DeliveryStats:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
        store = open_store(settings)
        try:
            return await _deliver_here(store, settings, names, until_idle, stop)
        finally:
            await store.close()

    results.send(run_on_fast_loop(work()))
    results.close()


def resident_memory_mb() -> float:
    """This process's resident memory now (not its peak), in MiB."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except OSError:  # not Linux: the peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return pages * resource.getpagesize() / (1024 * 1024)


def _start_api(store: Store, settings: Settings) -> asyncio.Task[None]:
    from core.api import serve_api

    return asyncio.create_task(serve_api(store, settings))


@contextlib.contextmanager
def _stopping_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT and SIGTERM: workers finish the batches in flight, give
    back their leases and return."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for number in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(number, stop.set)
            installed.append(number)
    try:
        yield
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
