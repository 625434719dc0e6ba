"""What runs the engine's tasks: `local` (this machine) and `ray` (a Ray cluster), chosen by name.

A backend implements engine.backend.Backend: submit a task or an actor call, wait for it,
hold blocks and exchange pieces, start UDF pools. The registry maps the `runner` setting to
a backend; the shared integration suite in tests/integration runs against every entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..errors import RunnerError

if TYPE_CHECKING:  # the registry stays light: a UDF worker process imports backends.local without the engine
    from ..engine.backend import Backend


def _local(config) -> "Backend":
    from .local.backend import LocalBackend
    return LocalBackend(config)


def _ray(config) -> "Backend":
    from .ray.backend import RayBackend
    return RayBackend(config)


BACKENDS: dict[str, Callable[..., "Backend"]] = {"local": _local, "ray": _ray}


def backend_for(config) -> "Backend":
    factory = BACKENDS.get(config.runner)
    if factory is None:
        raise RunnerError(f"Unknown runner {config.runner!r}. Choose one of: {', '.join(sorted(BACKENDS))}.")
    return factory(config)
