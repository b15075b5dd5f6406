"""A pool of spawned processes forming one torch.distributed group, reused across tests.

Starting processes and a process group costs seconds; the ring tests run dozens of cases, so
each world size gets one pool (a pytest fixture) and every test sends it a case: the name of a
function in cases.py and its keyword arguments. Every rank runs the case and sends back its
result or its traceback. A rank that fails may leave the others blocked in a collective, so any
failure or timeout restarts the pool before the next test.

Rendezvous is on 127.0.0.1 at a free port; gloo is kept on the loopback interface.
"""
import importlib
import os
import queue
import socket
import time
import traceback
from typing import Any, Dict, List

import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, backend: str, tasks, results) -> None:
    import torch
    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    if backend == "nccl":
        torch.cuda.set_device(rank)
    torch.set_num_threads(1)  # the ranks share a few cores; oversubscription only slows them
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size)
    while True:
        task = tasks.get()
        if task is None:
            break
        name, kwargs = task
        try:
            module_name, fn_name = name.split(":")
            fn = getattr(importlib.import_module(module_name), fn_name)
            results.put((rank, True, fn(rank=rank, world_size=world_size, **kwargs)))
        except BaseException:  # report everything: the parent decides what failed
            results.put((rank, False, traceback.format_exc()))
    dist.destroy_process_group()


class DistPool:
    def __init__(self, world_size: int, backend: str = "gloo", timeout_s: float = 120.0):
        self.world_size = world_size
        self.backend = backend
        self.timeout_s = timeout_s
        self._start()

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        self._tasks = [ctx.Queue() for _ in range(self.world_size)]
        self._results = ctx.Queue()
        port = free_port()
        self._procs = [ctx.Process(target=_worker, daemon=True,
                                   args=(rank, self.world_size, port, self.backend,
                                         self._tasks[rank], self._results))
                       for rank in range(self.world_size)]
        for proc in self._procs:
            proc.start()

    def close(self) -> None:
        for tasks in self._tasks:
            tasks.put(None)
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def _restart(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
        self._start()

    def run(self, case: str, **kwargs: Any) -> List[Any]:
        """Run case(rank=, world_size=, **kwargs) on every rank; results by rank. `case` is
        "module:function", or a function name in cases.py."""
        name = case if ":" in case else f"cases:{case}"
        for tasks in self._tasks:
            tasks.put((name, kwargs))
        by_rank: Dict[int, Any] = {}
        errors: List[str] = []
        deadline = time.monotonic() + self.timeout_s
        while len(by_rank) < self.world_size:
            dead = [rank for rank, proc in enumerate(self._procs) if proc.exitcode is not None]
            if dead or time.monotonic() > deadline:
                errors.append(f"ranks {dead} exited; " if dead else "timed out; ")
                errors[-1] += f"ranks that answered: {sorted(by_rank)}"
                break
            try:
                rank, ok, value = self._results.get(timeout=1.0)
            except queue.Empty:
                continue
            by_rank[rank] = value
            if not ok:
                errors.append(f"rank {rank}:\n{value}")
                # The others may be stuck in a collective the failed rank never joined.
                deadline = min(deadline, time.monotonic() + 15.0)
        if errors:
            self._restart()
            raise AssertionError(f"case {case} failed:\n" + "\n".join(errors))
        return [by_rank[rank] for rank in range(self.world_size)]
