"""``trainer.strategy=ddp``: rank processes that the study starts once and reuses for every fit.

Lightning's ``ddp`` starts its extra ranks by re-running the command line, which inside a
study would start more studies. Like ``torchrun``, the engine starts the ranks itself
instead: ranks 1..N-1 are ``python -m automl_rnn.engine.rank_pool`` processes, started at the
first multi-device fit and kept while the study runs, and this process is rank 0. Both sides
set the variables Lightning reads (``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``NODE_RANK``), so Lightning sees processes created externally, launches none
and builds an ordinary ``DDPStrategy``.

For each fit, rank 0 sends every rank the ``TrainerRecipe``, the module and the loaders
(pickled by value, as ``ddp_spawn`` does), then all ranks build their Trainer and fit
together; only rank 0 (this process) talks to the study, and the callbacks broadcast its
decisions. The process group lives for one fit (each fit gets a fresh port) so that nothing
outside training, such as the final test's metrics, waits on the other ranks. Unlike
``ddp_spawn``, a fit pays no process start-up, and rank 0's callbacks are the caller's own.

A rank that fails sends its error (``"Type: message"``) and exits, which ends the collective
rank 0 is waiting in; rank 0 then raises ``RankProcessError``, so a non-finite loss or an
out-of-memory error in any rank prunes the trial as it would on one device. After any failed
fit the ranks are stopped, and the next fit starts new ones. Each rank's output goes to a log
file, whose end is shown when the rank dies without a word.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from multiprocessing.connection import Client, Connection, Listener
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any, Iterator

from automl_rnn.config import TrainerConfig
from automl_rnn.engine.failures import RankProcessError, is_non_finite_loss, is_out_of_memory

ADDRESS_ENV = "AUTOML_RNN_RANK_POOL"
"""``host:port`` of rank 0's listener, in a rank process's environment."""
KEY_ENV = "AUTOML_RNN_RANK_POOL_KEY"
"""The listener's authentication key (hex), in a rank process's environment."""
HOST = "127.0.0.1"
START_TIMEOUT = 120.0
"""Seconds a new rank may take to import torch and Lightning and connect."""
FINISH_TIMEOUT = 120.0
"""Seconds the other ranks may take to report after rank 0's fit has ended."""
DISTRIBUTED_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK")

__all__ = ["fit_on_pool", "shutdown", "world_size"]


def world_size(config: TrainerConfig) -> int:
    """The number of ranks (devices) of one multi-device fit."""
    devices = config.devices
    if isinstance(devices, (list, tuple)):
        return len(devices)
    text = str(devices).strip()
    if text == "-1":
        import torch

        return torch.cuda.device_count()
    if "," in text:
        return len([part for part in text.split(",") if part.strip()])
    return int(text)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _rank_environment(rank: int, size: int, port: int) -> dict[str, str]:
    return {"MASTER_ADDR": HOST, "MASTER_PORT": str(port), "WORLD_SIZE": str(size), "RANK": str(rank),
            "LOCAL_RANK": str(rank), "NODE_RANK": "0"}


@contextmanager
def _as_rank_zero(size: int, port: int) -> Iterator[None]:
    """This process's environment as rank 0 of ``size`` ranks, restored afterwards."""
    saved = {name: os.environ.get(name) for name in DISTRIBUTED_ENV}
    os.environ.update(_rank_environment(0, size, port))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _end_process_group() -> None:
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _fit_as_rank(recipe: Any, module: Any, train: Any, val: Any) -> None:
    """This rank's part of one fit: its own Trainer from ``recipe``, then the process group ends."""
    try:
        recipe.build().fit(module, train, val)
    finally:
        _end_process_group()


class RankPool:
    """Ranks 1..size-1 for this process's multi-device fits (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.processes: list[subprocess.Popen] = []
        self.connections: list[Connection] = []
        self.logs: list[Path] = []
        self._folder: tempfile.TemporaryDirectory | None = None

    def start(self) -> None:
        """Start the ranks and wait until each has connected."""
        key = secrets.token_bytes(16)
        self._folder = tempfile.TemporaryDirectory(prefix="automl_rnn_ranks_")
        with Listener((HOST, 0), authkey=key) as listener:
            host, port = listener.address
            for rank in range(1, self.size):
                log = Path(self._folder.name) / f"rank-{rank}.log"
                env = {**os.environ, **_rank_environment(rank, self.size, 0), ADDRESS_ENV: f"{host}:{port}",
                       KEY_ENV: key.hex(), "PYTHONWARNINGS": "ignore"}
                with open(log, "wb") as out:
                    self.processes.append(subprocess.Popen(
                        [sys.executable, "-m", "automl_rnn.engine.rank_pool"], env=env, stdout=out,
                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
                self.logs.append(log)
            by_rank = self._accept(listener)
        self.connections = [by_rank[rank] for rank in range(1, self.size)]

    def _accept(self, listener: Listener) -> dict[int, Connection]:
        """Each rank's connection, by rank; a rank that dies while starting must not block forever."""
        by_rank: dict[int, Connection] = {}

        def accept_all() -> None:
            with contextlib.suppress(OSError, EOFError):
                while len(by_rank) < self.size - 1:
                    connection = listener.accept()
                    by_rank[connection.recv()] = connection

        accepting = threading.Thread(target=accept_all, daemon=True)
        accepting.start()
        deadline = time.monotonic() + START_TIMEOUT
        while accepting.is_alive() and time.monotonic() < deadline:
            accepting.join(0.2)
            if any(process.poll() is not None for process in self.processes):
                break  # a rank died while starting
        if len(by_rank) < self.size - 1:
            for connection in by_rank.values():
                connection.close()
            logs = "; ".join(f"rank {rank}: {_tail(log)}" for rank, log in enumerate(self.logs, start=1))
            self.stop()
            raise RankProcessError(0, f"RuntimeError: the rank processes did not all start and connect "
                                      f"(limit {START_TIMEOUT:.0f} s): {logs}")
        return by_rank

    def fit(self, recipe: Any, module: Any, train: Any, val: Any) -> None:
        """One fit on every rank; raises the first rank's error if one failed."""
        if not self.processes:
            self.start()
        port = _free_port()
        payload = bytes(ForkingPickler.dumps({"recipe": recipe, "module": module, "train": train, "val": val,
                                              "port": port}))
        for connection in self.connections:
            connection.send_bytes(payload)
        try:
            with _as_rank_zero(self.size, port):
                _fit_as_rank(recipe, module, train, val)
        except BaseException as error:
            failed = self._rank_error(wait=2.0)
            self.stop()
            if failed is not None and not _is_own_training_error(error):
                raise failed from error
            raise
        failed = self._rank_error(wait=FINISH_TIMEOUT, every_rank=True)
        if failed is not None:
            self.stop()
            raise failed

    def _rank_error(self, wait: float, every_rank: bool = False) -> RankProcessError | None:
        """The first failure reported by (or seen of) ranks 1..; with ``every_rank``, wait for all."""
        for rank, (connection, process) in enumerate(zip(self.connections, self.processes), start=1):
            try:
                if not connection.poll(wait):
                    if every_rank:
                        return RankProcessError(rank, f"TimeoutError: rank {rank} did not finish within {wait:.0f} s "
                                                      f"of rank 0; its log ends with: {_tail(self.logs[rank - 1])}")
                    continue
                status, message = connection.recv()
            except (EOFError, OSError):
                process.wait(timeout=10)
                return RankProcessError(rank, f"RuntimeError: rank {rank} exited with code {process.returncode}; "
                                              f"its log ends with: {_tail(self.logs[rank - 1])}")
            if status == "error":
                return RankProcessError(rank, message)
        return None

    def stop(self) -> None:
        """End the ranks (they may be stuck in a collective after a failure) and forget them."""
        for connection in self.connections:
            connection.close()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        self.processes, self.connections, self.logs = [], [], []
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


def _is_own_training_error(error: BaseException) -> bool:
    """True when rank 0 failed on its own account (a bad loss or memory), not because another rank left."""
    return is_non_finite_loss(error) or is_out_of_memory(error) or isinstance(error, KeyboardInterrupt)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(no log)"


_POOL: RankPool | None = None


def fit_on_pool(recipe: Any, module: Any, train: Any, val: Any) -> None:
    """``fit`` for ``trainer.strategy=ddp``: this process as rank 0 of the study's rank pool."""
    global _POOL
    size = world_size(recipe.config)
    if _POOL is not None and _POOL.size != size:
        shutdown()
    if _POOL is None:
        _POOL = RankPool(size)
    _POOL.fit(recipe, module, train, val)


def shutdown() -> None:
    """Stop the rank pool, if one runs (the search calls it at its end; also at exit)."""
    global _POOL
    if _POOL is not None:
        _POOL.stop()
        _POOL = None


atexit.register(shutdown)


def rank_main() -> int:
    """A rank process: fit every job rank 0 sends, until it closes the connection."""
    import torch  # noqa: F401  (first, so unpickling finds torch's reducers)

    import automl_rnn.engine.module  # noqa: F401  (the module travels by value)
    import automl_rnn.engine.trainer  # noqa: F401  (and so do the loaders' generators)

    host, port = os.environ[ADDRESS_ENV].rsplit(":", 1)
    rank = int(os.environ["RANK"])
    with Client((host, int(port)), authkey=bytes.fromhex(os.environ[KEY_ENV])) as connection:
        connection.send(rank)
        while True:
            try:
                job = pickle.loads(connection.recv_bytes())
            except EOFError:
                return 0
            os.environ["MASTER_PORT"] = str(job["port"])
            try:
                _fit_as_rank(job["recipe"], job["module"], job["train"], job["val"])
            except BaseException as error:
                connection.send(("error", f"{type(error).__name__}: {error}".strip()))
                return 1  # leaving breaks the collective rank 0 may be waiting in
            connection.send(("done", None))


if __name__ == "__main__":
    sys.exit(rank_main())
