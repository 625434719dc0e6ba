"""Starting UDF worker processes: a fork server with the heavy imports done, or spawn.

Why this module exists: Python UDFs run in worker processes (see workers.py), and how a worker
process is started decides whether it is safe and how long a pool takes to start.

- **fork** of the sluice process is unsafe: Polars' and Arrow's thread pools, jemalloc's
  background threads and the executor's threads are running, and a child forked from a
  multi-threaded process can inherit a lock that another thread held, and hang.
- **spawn** (a fresh interpreter per worker) is safe, but each worker imports numpy, pyarrow,
  pandas and Polars again (~0.35 s of CPU each here), for every pool and every replacement.
  `multiprocessing`'s spawn and forkserver also re-import the caller's `__main__` in every
  child, which breaks scripts without `if __name__ == "__main__"`.
- **fork server** (chosen): one helper process per sluice process, started (with spawn) on
  first use or by `prewarm`, imports numpy, pyarrow and pandas once *with their helper
  threads switched off* (OPENBLAS_NUM_THREADS=1, Arrow's jemalloc background_thread:false),
  checks that it is still single-threaded (/proc/self/task), then forks workers on request.
  A fork from a single-threaded process is safe. Polars starts a thread on import that cannot
  be switched off, so workers import Polars after the fork; with sluice's package __init__
  deferred (see _import_without_package_init) a worker is ready in ~0.1 s of CPU. Workers
  never re-import the caller's `__main__`: user functions travel with cloudpickle.
  Where the server cannot start, or finds itself multi-threaded after its imports (or off
  Linux, where it cannot tell), workers are spawned. SLUICE_WORKER_START=spawn forces that.

This file imports only the standard library, because the fork server runs it as a script:
importing the sluice package would import Polars and start a thread in the server.

Each worker talks to the sluice process over its own socketpair (`Channel`: length-prefixed
pickles of small control tuples; blocks travel as shared-memory files, see shm.py). The fork
server receives the worker's end of that socketpair with SCM_RIGHTS, forks, and reports the
worker's pid and, when it exits, its exit status (workers are its children, so only it can
reap them). When the sluice process dies, the server kills its workers and removes the
sluice process's shared-memory block directories.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import itertools
import os
import pickle
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import traceback

BLOCK_DIR_PREFIX = "sluice-blocks-"  # /dev/shm/sluice-blocks-<owner pid>-<random>/
# What a worker imports anyway, minus Polars. pandas too: pyarrow imports it on the first
# pa.table(dict) or pa.array(list) (its pandas shim), which nearly every UDF path reaches.
PRELOAD = ("numpy", "pyarrow", "pyarrow.ipc", "pyarrow.compute", "pandas", "cloudpickle", "psutil", "difflib",
           "tempfile", "typing_extensions")
# Set in the fork server only, before it imports anything: these libraries then start no thread.
_QUIET_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_HEADER = struct.Struct("!Q")
_START_TIMEOUT_S = 60.0


class Channel:
    """Length-prefixed pickles over a stream socket. One sender and one receiver at a time."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)

    def send(self, obj) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(_HEADER.pack(len(data)) + data)

    def recv(self):
        (size,) = _HEADER.unpack(self._exactly(_HEADER.size))
        return pickle.loads(self._exactly(size))

    def poll(self, timeout: float | None) -> bool:
        """True when a message (or the end of the stream) is waiting."""
        return bool(self._poller.poll(None if timeout is None else int(timeout * 1000)))

    def _exactly(self, n: int) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if k == 0:
                raise EOFError("the other process closed the channel")
            got += k
        return buf

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def block_dirs_of(pid: int, root: str) -> list[str]:
    return glob.glob(os.path.join(root, f"{BLOCK_DIR_PREFIX}{pid}-*"))


def exit_signal(returncode: int | None) -> int | None:
    return -returncode if returncode is not None and returncode < 0 else None


# --------------------------------------------------------------------------- in the worker


def child_main(fd: int) -> int:
    """First code a worker runs (forked or spawned): read the boot message, then run the target.

    The boot message (a dict of builtins) carries the parent's sys.path, working directory and
    environment (with the worker's own settings: CUDA_VISIBLE_DEVICES, thread counts), which are
    applied before anything else is imported, and the module and function to run.
    """
    chan = Channel(socket.socket(fileno=fd))
    try:
        boot = chan.recv()
    except (EOFError, OSError):
        return 0  # the sluice process went away before it said what to run
    sys.path[:] = boot["sys_path"]
    os.environ.clear()
    os.environ.update(boot["env"])
    try:
        os.chdir(boot["cwd"])
    except OSError:
        pass
    target = getattr(_import_without_package_init(boot["module"], boot.get("package_dir")), boot["function"])
    return int(target(chan, boot) or 0)


def _import_without_package_init(module: str, package_dir: str | None):
    """Import `module` of the top-level package at `package_dir` without running the package's __init__ yet.

    sluice's __init__ imports the whole engine (~0.14 s); a worker needs a few small modules.
    The package module is created bare, with a module __getattr__ (PEP 562) that runs the real
    __init__ in place the first time anything asks for a name it lacks, so user code that
    uses `sluice.col` or `from sluice import ...` later still gets the whole package.
    """
    top = module.partition(".")[0]
    if package_dir is None or top in sys.modules:
        return importlib.import_module(module)
    init = os.path.join(package_dir, "__init__.py")
    spec = importlib.util.spec_from_file_location(top, init, submodule_search_locations=[package_dir])
    package = importlib.util.module_from_spec(spec)
    loaded = []

    def __getattr__(name: str):
        if not loaded:
            loaded.append(True)
            with open(init, "rb") as f:
                exec(compile(f.read(), init, "exec"), package.__dict__)
            if name in package.__dict__:
                return package.__dict__[name]
        raise AttributeError(f"module {top!r} has no attribute {name!r}")

    package.__getattr__ = __getattr__
    sys.modules[top] = package
    return importlib.import_module(module)


# --------------------------------------------------------------------------- the fork server


def _set_parent_death_signal(parent: int) -> None:
    """Linux: die with SIGKILL when the fork server (this child's parent) dies."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != parent:
        os._exit(0)  # it died before the signal was armed


def _thread_names() -> list[str]:
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except OSError:
            names.append("?")
    return names


def _server_main(fd: int) -> None:
    ctrl = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the sluice process; it stops us
    config = pickle.loads(ctrl.recv(1 << 20))
    sys.path[:] = config["sys_path"]
    for name in config["preload"]:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    threads = _thread_names() if os.path.isdir("/proc/self/task") else ["?", "?"]
    ctrl.send(pickle.dumps(("ready", os.getpid(), threads)))
    if len(threads) != 1:
        return  # not safe to fork; the parent falls back to spawn
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # pid -> token
    server_pid = os.getpid()
    try:
        while True:
            readable, _, _ = select.select([ctrl, wake_r], [], [])
            if wake_r in readable:
                os.read(wake_r, 4096)
                _reap(ctrl, children)
            if ctrl not in readable:
                continue
            data, fds, _, _ = socket.recv_fds(ctrl, 1 << 20, 4)
            if not data:
                break  # the sluice process is gone
            command = pickle.loads(data)
            if command[0] == "fork":
                token = command[1]
                try:
                    pid = os.fork()
                except OSError:  # e.g. EAGAIN: the process limit
                    for f in fds:
                        os.close(f)
                    ctrl.send(pickle.dumps(("fork_failed", token)))
                    continue
                if pid == 0:
                    code = 1
                    try:
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        os.close(wake_r)
                        os.close(wake_w)
                        ctrl.close()
                        _set_parent_death_signal(server_pid)
                        code = child_main(fds[0])
                    except SystemExit as exc:
                        code = exc.code if isinstance(exc.code, int) else 1
                    except BaseException:
                        traceback.print_exc()
                    finally:
                        for stream in (sys.stdout, sys.stderr):
                            try:
                                stream.flush()
                            except Exception:
                                pass
                        os._exit(code)
                for f in fds:
                    os.close(f)
                children[pid] = token
                ctrl.send(pickle.dumps(("forked", token, pid)))
            elif command[0] == "kill":
                for pid, token in children.items():
                    if token == command[1]:
                        try:
                            os.kill(pid, command[2])
                        except ProcessLookupError:
                            pass
    finally:
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in list(children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        for path in block_dirs_of(config["parent_pid"], config["shm_root"]):
            shutil.rmtree(path, ignore_errors=True)


def _reap(ctrl: socket.socket, children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        token = children.pop(pid, None)
        if token is not None:
            try:
                ctrl.send(pickle.dumps(("exited", token, os.waitstatus_to_exitcode(status))))
            except OSError:
                pass


# --------------------------------------------------------------------------- in the sluice process


class WorkerProcess:
    """A started worker: its pid, its exit status once known, and a way to kill it."""

    def __init__(self, pid: int, wait, kill):
        self.pid = pid
        self.returncode: int | None = None
        self._wait, self._kill = wait, kill

    def wait(self, timeout: float | None) -> int | None:
        """The exit status (negative: killed by that signal), or None if unknown within timeout."""
        if self.returncode is None:
            self.returncode = self._wait(timeout)
        return self.returncode

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.returncode is None:
            self._kill(sig)


def _python_command(mode: str, fd: int) -> list[str]:
    # runpy.run_path runs this file without importing the sluice package and without putting
    # this directory on sys.path (its modules must not shadow top-level ones).
    code = f"import runpy, sys; runpy.run_path({os.path.abspath(__file__)!r}, run_name='__sluice_worker_start__')"
    return [sys.executable, "-c", code, mode, str(fd)]


def spawn_worker(sock: socket.socket, env: dict[str, str]) -> WorkerProcess:
    """Start a worker as a fresh interpreter; `sock` is the worker's end of its socketpair."""
    proc = subprocess.Popen(_python_command("--child", sock.fileno()), pass_fds=(sock.fileno(),),
                            stdin=subprocess.DEVNULL, env=env, close_fds=True)
    sock.close()

    def wait(timeout):
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(sig):
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass

    return WorkerProcess(proc.pid, wait, kill)


class ForkServer:
    """The client side of one fork server process. Thread-safe."""

    def __init__(self, shm_root: str):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, **_QUIET_THREADS)
        conf = env.get("JE_ARROW_MALLOC_CONF")
        env["JE_ARROW_MALLOC_CONF"] = f"{conf},background_thread:false" if conf else "background_thread:false"
        self.proc = subprocess.Popen(_python_command("--server", theirs.fileno()), pass_fds=(theirs.fileno(),),
                                     stdin=subprocess.DEVNULL, env=env, close_fds=True)
        theirs.close()
        self.ctrl = ours
        self.owner = os.getpid()
        self.alive = False
        self.threads: list[str] = []
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._tokens = itertools.count(1)
        self._pids: dict[int, int | None] = {}
        self._exits: dict[int, int] = {}
        ours.sendall(pickle.dumps({"sys_path": list(sys.path), "preload": PRELOAD, "parent_pid": os.getpid(),
                                   "shm_root": shm_root}))
        ours.settimeout(_START_TIMEOUT_S)
        try:
            data = ours.recv(1 << 20)
        except OSError:
            data = b""
        ours.settimeout(None)
        if not data:
            self.close()
            return
        _, _, self.threads = pickle.loads(data)
        if len(self.threads) != 1:
            self.close()
            return
        self.alive = True
        threading.Thread(target=self._read, name="sluice-forkserver", daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                data = self.ctrl.recv(1 << 16)
                if not data:
                    break
                message = pickle.loads(data)
                with self._cond:
                    if message[0] in ("forked", "fork_failed"):
                        self._pids[message[1]] = message[2] if message[0] == "forked" else None
                    elif message[0] == "exited":
                        self._exits[message[1]] = message[2]
                    self._cond.notify_all()
        except OSError:
            pass
        finally:
            with self._cond:
                self.alive = False
                self._cond.notify_all()
            try:
                self.proc.wait(10)  # reap it
            except subprocess.TimeoutExpired:
                pass

    def start(self, sock: socket.socket) -> WorkerProcess:
        """Fork a worker. `sock` (the worker's end of its socketpair) is closed once it is sent."""
        token = next(self._tokens)
        with self._send_lock:
            socket.send_fds(self.ctrl, [pickle.dumps(("fork", token))], [sock.fileno()])  # OSError: sock stays open
        sock.close()
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._pids or not self.alive, _START_TIMEOUT_S):
                raise OSError("the sluice fork server did not answer")
            pid = self._pids.pop(token, None)
            if pid is None:
                raise OSError("the sluice fork server stopped or could not fork")
        return WorkerProcess(pid, lambda timeout: self._wait(token, timeout), lambda sig: self._kill(token, sig))

    def _wait(self, token: int, timeout: float | None) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: token in self._exits or not self.alive, timeout)
            return self._exits.get(token)  # not pop: a killer and a stopper may both wait for the same exit

    def _kill(self, token: int, sig: int) -> None:
        with self._send_lock:
            try:
                self.ctrl.send(pickle.dumps(("kill", token, int(sig))))
            except OSError:
                pass

    def close(self) -> None:
        self.alive = False
        try:
            self.ctrl.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_server: ForkServer | None = None
_server_lock = threading.Lock()
_server_failed = False


def start_method() -> str:
    method = os.environ.get("SLUICE_WORKER_START", "forkserver").lower()
    return method if method in ("forkserver", "spawn") else "forkserver"


def fork_server(shm_root: str) -> ForkServer | None:
    """This process's fork server, started on first use; None where it cannot run safely."""
    global _server, _server_failed
    if start_method() != "forkserver" or not hasattr(socket, "send_fds") or not hasattr(os, "fork"):
        return None
    with _server_lock:
        if _server is not None and (_server.owner != os.getpid() or not _server.alive):
            _server = None  # inherited through a fork of this process, or it died: start another
        if _server is None and not _server_failed:
            try:
                server = ForkServer(shm_root)
            except OSError:
                server = None
            if server is None or not server.alive:
                _server_failed = True  # e.g. a library started a thread on import: spawn from now on
            else:
                _server = server
        return _server


def prewarm(shm_root: str) -> None:
    """Start the fork server (and its imports) in the background, so that the first pool starts sooner."""
    threading.Thread(target=fork_server, args=(shm_root,), name="sluice-prewarm", daemon=True).start()


def start_worker(sock: socket.socket, env: dict[str, str], shm_root: str) -> WorkerProcess:
    """Start a worker process by the chosen method; `sock` is the worker's end of its socketpair."""
    server = fork_server(shm_root)
    if server is not None:
        try:
            return server.start(sock)
        except OSError:
            if sock.fileno() == -1:
                raise  # the server took the socket but did not answer
    return spawn_worker(sock, env)


if __name__ == "__sluice_worker_start__":
    _mode, _fd = sys.argv[1], int(sys.argv[2])
    if _mode == "--server":
        try:
            _server_main(_fd)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sluice process went away (its run ended before the server was up): nothing to serve
        sys.exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(child_main(_fd))
