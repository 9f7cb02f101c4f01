"""Ray tasks for the commands that fan work out over a cluster (``multispin-sweep --ray``,
``multispin-leaderboard --ray``): join the cluster, run a function once per item as a Ray task, gather the outcomes
as the tasks finish.

Each task reserves ``cpus`` of the cluster's CPUs and is run again, up to ``retries`` times, when the worker process
running it dies (a node lost, the process killed; Ray's ``max_retries``); an exception raised by the function itself
is its outcome and is not retried. Ray is imported only when these functions run: the main venv has none.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["LOCAL", "as_tasks", "check_address", "ray_session", "require_ray"]

#: The address that starts a new local Ray instead of joining a cluster (for trying a command out).
LOCAL = "local"
Item = TypeVar("Item")


@contextmanager
def ray_session(address: str) -> Iterator[None]:
    """Join the Ray cluster at ``address`` (``host:port``, ``ray://host:port``, ``auto``; :data:`LOCAL`: start a
    local Ray) for the duration of the block; the worker output stays in the nodes' logs. A cluster that does not
    let the driver in (no Ray at that address, another authentication token) is an :class:`agents.cli.UserError`."""
    import ray

    from agents.cli import UserError

    try:
        if address == LOCAL:
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not connect to Ray at {address!r}: {first}") from exc
    try:
        yield
    finally:
        ray.shutdown()


def as_tasks(
    function: Callable[..., Any], items: Iterable[Item], *args: Any, cpus: float = 1.0, retries: int = 2
) -> Iterator[tuple[Item, Any]]:
    """``function(item, *args)`` for every item as a Ray task; yields ``(item, result)`` as the tasks finish, the
    result being the exception when the task failed (the function's own exception, or Ray's when the worker died
    more than ``retries`` times). Needs a Ray session (:func:`ray_session`); leaving the loop early cancels the tasks
    not yet finished.

    :param cpus: Ray CPUs reserved per task
    :param retries: runs again of a task whose worker died (0: none)
    """
    import ray
    from ray.exceptions import RayError, RayTaskError

    task = ray.remote(num_cpus=cpus, max_retries=retries)(function)
    pending = {task.remote(item, *args): item for item in items}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except RayTaskError as exc:  # the function raised: its own exception, not Ray's wrapper
                    result = exc.cause if isinstance(exc.cause, BaseException) else exc
                except RayError as exc:  # the worker died on every attempt, or the task was cancelled
                    result = exc
                yield item, result
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast (:class:`agents.cli.UserError`) if a ``host:port`` / ``ray://host:port`` Ray address does not accept
    connections (``ray.init`` would retry for minutes); ``auto`` and addresses without a port are left to Ray.

    :param timeout: seconds to wait for the connection
    """
    from agents.cli import UserError

    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"could not connect to Ray at {address!r}: {exc.strerror or exc}") from None


def require_ray(address: str) -> None:
    """Check that ``--ray ADDRESS`` can work: the cluster accepts connections (first, in seconds: ``ray.init`` would
    retry for minutes) and ray is installed; raises :class:`agents.cli.UserError` saying which is not the case."""
    from agents.cli import UserError

    if address != LOCAL:
        check_address(address)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("--ray needs ray: pip install 'multispin-env[rllib]'") from None
