"""Retry I/O that failed with a transient error, with exponential backoff and full jitter.

Object stores and network filesystems fail now and then for reasons that go away: a reset
connection, a timeout, a throttled request. A batch job should ride those out rather than
lose an hour of work, but it must not retry what will fail the same way every time: a
missing file, a permission problem, a corrupt footer, or an exception from user code.

`retrying(fn, config, stats, what)` calls `fn` up to `config.retry_attempts` times. Before
retry k it sleeps a random time in [0, retry_backoff_s * 2**(k-1)] ("full jitter"), and it
records each retry with `stats.add_retry`. When the last try fails it raises
`TransientError`, naming what failed, the attempts and the last error (chained as the
cause). `is_transient` decides which errors qualify (see its docstring).

The caller must make `fn` safe to repeat: a read materializes everything it produces inside
`fn` (so a retried read never yields rows twice), and a write goes to a name of its own.

Nested calls share one policy: while `fn` runs, the config and stats passed to the outer
call are the defaults of any `retrying` call made on the same thread without them. So the
executor retries a whole read task and a reader retries each file inside it; a file that
keeps failing raises `TransientError`, which is a `SluiceError` and is not retried again.
"""

from __future__ import annotations

import errno
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from ..errors import SluiceError, TransientError

T = TypeVar("T")

MAX_BACKOFF_S = 30.0

# OSError subclasses that describe the state of the storage, not a hiccup: retrying them
# only delays the real error. A user who names one in `transient_errors` gets it retried.
DETERMINISTIC_OS_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)

# errno values of a plain OSError that will not go away by waiting a second.
DETERMINISTIC_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ENOENT", "EEXIST", "EPERM", "EACCES", "EISDIR", "ENOTDIR", "ENOTEMPTY", "EINVAL", "ENAMETOOLONG",
    "ENOSPC", "EDQUOT", "EROFS", "EBADF", "EXDEV", "ELOOP", "EFBIG") if hasattr(errno, name))

# Arrow reports decoding failures (a corrupt footer, bad compressed pages) as a plain OSError
# without errno, as it does network failures. These words mark the decoding failures.
_DECODE_MARKERS = ("corrupt", "thrift", "magic bytes", "decompress", "inflate", "deflate", "checksum",
                   "invalid", "out of bounds", "malformed", "not a parquet", "is this a", "file size is 0",
                   "smaller than", "unexpected end", "truncated", "unsupported", "out of specification",
                   "overflow", "mismatch", "snappy", "zstd", "lz4", "brotli", "parse error")

# Arrow's S3 errors read "AWS Error <CODE> during <Operation> operation" or
# "AWS Error UNKNOWN (HTTP status 503) during ...". These codes (and 408/429/5xx) pass.
_AWS_ERROR = re.compile(r"AWS Error (\w+)(?: \(HTTP status (\d+)\))?")
_TRANSIENT_AWS_CODES = frozenset({
    "NETWORK_CONNECTION", "SLOW_DOWN", "THROTTLING", "THROTTLING_EXCEPTION", "SERVICE_UNAVAILABLE",
    "INTERNAL_FAILURE", "REQUEST_TIMEOUT", "REQUEST_TIME_TOO_SKEWED", "REQUEST_LIMIT_EXCEEDED",
    "SERVICE_UNAVAILABLE_EXCEPTION", "TOO_MANY_REQUESTS"})

_scope = threading.local()


def is_transient(exc: BaseException, names: Iterable[str] | None = None) -> bool:
    """Whether `exc` is worth retrying under the configured transient error names.

    An error qualifies when a class in its MRO is named in `names` (default: the current
    config's `transient_errors`), except:
    - sluice's own errors (`SluiceError`): they are already decided, e.g. a corrupt file or
      user code that raised, or a `TransientError` from an inner retry that gave up;
    - `FileNotFoundError`, `PermissionError`, `IsADirectoryError`, `NotADirectoryError` and
      `FileExistsError`, unless that exact class is named;
    - a plain `OSError` whose errno is deterministic (no space, read-only filesystem...);
    - a plain `OSError` without errno whose message reads like Arrow failing to decode data
      ("Couldn't deserialize thrift", "Corrupt snappy compressed data"), or like an S3 error
      that is not about the network or throttling (ACCESS_DENIED, NO_SUCH_BUCKET...).
    """
    if isinstance(exc, SluiceError):
        return False
    if names is None:
        names = _current_config().transient_errors
    names = set(names)
    mro = type(exc).__mro__
    matched = next((cls for cls in mro if cls.__name__ in names), None)
    if matched is None:
        return False
    if not isinstance(exc, OSError) or matched not in (OSError, EnvironmentError, IOError):
        # a deterministic OSError subclass passes only when named itself
        return not isinstance(exc, DETERMINISTIC_OS_ERRORS) or any(
            cls.__name__ in names for cls in mro if issubclass(cls, DETERMINISTIC_OS_ERRORS))
    # matched by the generic name OSError: look closer
    if isinstance(exc, DETERMINISTIC_OS_ERRORS):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, InterruptedError, BlockingIOError)):
        return True
    if exc.errno is not None:
        return exc.errno not in DETERMINISTIC_ERRNOS
    message = str(exc)
    aws = _AWS_ERROR.search(message)
    if aws is not None:
        code, status = aws.group(1), aws.group(2)
        if code in _TRANSIENT_AWS_CODES:
            return True
        return status is not None and (int(status) in (408, 429) or int(status) >= 500)
    lowered = message.lower()
    return not any(marker in lowered for marker in _DECODE_MARKERS)


def backoff_s(config, retry: int, rng: random.Random | None = None) -> float:
    """The sleep before retry number `retry` (1-based): uniform in [0, base * 2**(retry-1)], capped."""
    ceiling = min(MAX_BACKOFF_S, max(0.0, float(config.retry_backoff_s)) * (2 ** (retry - 1)))
    return (rng or random).uniform(0.0, ceiling)


def retrying(fn: Callable[[], T], config=None, stats=None, what: str = "an I/O operation", *,
             sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `fn`; on a transient error sleep with backoff and call it again, up to config.retry_attempts tries.

    `config` and `stats` default to those of an enclosing `retrying` call on this thread, else
    to the current configuration and no stats. `what` names the work for the error message,
    e.g. "reading 's3://lake/x/part-0.parquet'".
    """
    outer = getattr(_scope, "policy", None)
    if config is None:
        config = outer[0] if outer is not None else _current_config()
    if stats is None and outer is not None:
        stats = outer[1]
    attempts = max(1, int(config.retry_attempts))
    names = tuple(config.transient_errors)
    _scope.policy = (config, stats)
    try:
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except BaseException as exc:
                if not isinstance(exc, Exception) or not is_transient(exc, names):
                    raise
                if attempt == attempts:
                    raise _gave_up(what, attempts, exc) from exc
                if stats is not None:
                    stats.add_retry(exc)
                sleep(backoff_s(config, attempt))
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        _scope.policy = outer


def _gave_up(what: str, attempts: int, exc: BaseException) -> TransientError:
    last = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else '(no message)'}"
    tries = "once" if attempts == 1 else f"{attempts} times"
    error = TransientError(
        f"{what[:1].upper()}{what[1:]} failed {tries} with a transient error; the last one was {last}. "
        f"Check that the storage is reachable (network, endpoint, throttling) and re-run; to retry longer, "
        f"raise sluice.configure(retry_attempts=..., retry_backoff_s=...).")
    error.what, error.attempts, error.last_error = what, attempts, exc
    return error


def _current_config():
    from .. import config as config_module
    return config_module.current()
