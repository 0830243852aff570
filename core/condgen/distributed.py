"""Sharded generation: one run split over torch.distributed ranks, as torchrun starts them.

Every sample's noise is seeded by (seed, index) and a run's batches are fixed by n and the
batch size, so a run splits by batches: of the batches still to do, rank r of W samples
every W-th one and writes its sample files into the shared run directory. Rank 0 alone
creates the directory and writes the manifest; when every rank is done it writes the
collection files and the preview from the sample files, as a resume does. The union of
the files is byte for byte the single-process run's, and ``--resume`` finishes a sharded
run with any number of ranks (the files on disk say what is done).

torch.distributed carries only small control messages (the ranks' agreement on the
request, the batch size, how each rank ended), so the backend is gloo, on GPUs too.
The ranks are found from the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT); ``core generate --nproc N`` starts N local ranks with the same
variables (``launch_local``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from condgen.errors import UsageError, first_line

#: Seconds a rank waits for the others at the rendezvous (``CONDGEN_DIST_TIMEOUT``
#: overrides): a rank that never comes is an error, not a hang.
TIMEOUT = 300.0
#: How long the control messages may wait: a rank that finished its share waits for the
#: slowest one at the end. A rank that dies closes its connections, which the others see
#: at once, so this is no hang either.
WAIT = timedelta(days=30)


class RankLost(Exception):
    """A control message failed: another rank died or cannot be reached."""


class Ranks:
    """This process's place in a sharded run; a plain process is rank 0 of a world of one."""

    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        self.size = _env_int(environ, "WORLD_SIZE", 1)
        self.rank = _env_int(environ, "RANK", 0)
        self.local_rank = _env_int(environ, "LOCAL_RANK", self.rank)
        if self.size < 1 or not 0 <= self.rank < self.size:
            raise UsageError(f"RANK={self.rank} and WORLD_SIZE={self.size} do not fit (0 <= RANK < WORLD_SIZE); start the ranks with torchrun or core generate --nproc N")
        self.host, self.port = environ.get("MASTER_ADDR"), environ.get("MASTER_PORT")
        self.address = f"{self.host}:{self.port}"
        self.timeout = _timeout(environ)
        self.started = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.size > 1

    def start(self, backend: str = "gloo") -> "Ranks":
        """Join the other ranks (a world of one joins nothing): ``gloo`` for control
        messages and CPU training, ``nccl`` for training on GPUs."""
        if not self.sharded or self.started:
            return self
        # c10d logs each failed connection attempt with a C++ stack to stderr; the error
        # below says it in one line (read when torch loads: set before the first import)
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
        import torch.distributed as dist

        if not self.host or not (self.port or "").isdigit():
            raise UsageError(f"WORLD_SIZE={self.size} but MASTER_ADDR / MASTER_PORT are {self.address}; start the ranks with torchrun or core generate --nproc N")
        try:
            store = dist.TCPStore(self.host, int(self.port), self.size, is_master=self.main, timeout=timedelta(seconds=self.timeout), wait_for_workers=True)
            dist.init_process_group(backend, store=store, rank=self.rank, world_size=self.size, timeout=WAIT)
        except Exception as exc:  # torch raises DistStoreError, RuntimeError or ValueError here
            raise UsageError(
                f"rank {self.rank} of {self.size} cannot join the others at {self.address} within {self.timeout:g} s ({first_line(exc)}); "
                "check MASTER_ADDR and MASTER_PORT and that every rank was started"
            ) from None
        self.started = True
        return self

    def close(self) -> None:
        if self.started:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.started = False

    def gather(self, value) -> list:
        """Every rank's ``value`` (picklable control data), in rank order, on every rank."""
        if not self.sharded:
            return [value]
        import torch.distributed as dist

        out = [None] * self.size
        try:
            dist.all_gather_object(out, value)
        except Exception as exc:
            raise RankLost(first_line(exc)) from None
        return out

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank."""
        return self.gather(value)[0]

    def share(self, batches: list) -> list:
        """This rank's part of a list of batches: every size-th one from its rank on."""
        return batches[self.rank :: self.size]

    def device(self, device: str) -> str:
        """A rank's device: ``auto`` or ``cuda`` become the local rank's GPU when there are several ranks."""
        if not self.sharded or device not in ("auto", "cuda"):
            return device
        import torch

        if torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return device


def agree(ranks: Ranks, facts: dict) -> None:
    """Refuse to start unless every rank has the same facts (request, versions, weights, run
    directory): ranks that disagree would write a run no single process could have."""
    everyone = ranks.gather(facts)
    for rank, theirs in enumerate(everyone):
        for key, value in everyone[0].items():
            other = theirs.get(key)
            if other != value:
                if isinstance(value, dict) and isinstance(other, dict):  # name the field: request.seed
                    field = next(k for k in sorted(set(value) | set(other)) if value.get(k) != other.get(k))
                    key, value, other = f"{key}.{field}", value.get(field), other.get(field)
                raise UsageError(
                    f"the ranks disagree on {key}: rank {rank} has {_short(other)}, rank 0 {_short(value)}; "
                    "install the same condgen, plugins and weights on every node and start every rank with the same arguments"
                )


def launch_local(nproc: int, args: list[str]) -> int:
    """Run ``python -m condgen ARGS`` as ``nproc`` ranks on this machine (torchrun's
    variables, a free port on 127.0.0.1) and return the worst exit code. Rank 0 keeps the
    terminal; the others' output is kept in temporary files and, when a rank fails while
    rank 0 did not, its last line is printed, so an error stays one line."""
    port = _free_port()
    ranks, logs = [], []
    for rank in range(nproc):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(nproc),
               "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        log = None if rank == 0 else tempfile.TemporaryFile(mode="w+")
        logs.append(log)
        ranks.append(subprocess.Popen([sys.executable, "-m", "condgen", *args], env=env, stdout=log, stderr=log))
    try:
        codes = [p.wait() for p in ranks]
    except KeyboardInterrupt:  # the terminal's Ctrl-C reached every rank too; let them record it
        codes = [p.wait() for p in ranks]
    worst = max(codes, key=lambda c: (c != 0, abs(c)))
    if codes[0] == 0 and worst != 0:
        rank = codes.index(worst)
        logs[rank].seek(0)
        lines = [line for line in logs[rank].read().splitlines() if line.strip()]
        print(f"rank {rank}: {lines[-1] if lines else f'exited with code {worst}'}", file=sys.stderr)
    for log in logs:
        if log is not None:
            log.close()
    return 1 if worst < 0 else worst


def strip_option(args: list[str], option: str) -> list[str]:
    """``args`` without ``option VALUE`` / ``option=VALUE``."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(f"{option}="):
            out.append(arg)
    return out


def _env_int(environ, key: str, default: int) -> int:
    text = environ.get(key)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{key}={text!r} is not a whole number; unset it, or start the ranks with torchrun or core generate --nproc N") from None


def _timeout(environ) -> float:
    text = environ.get("CONDGEN_DIST_TIMEOUT")
    if not text:
        return TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise UsageError(f"CONDGEN_DIST_TIMEOUT={text!r} is not a positive number of seconds; e.g. CONDGEN_DIST_TIMEOUT=300")
    return value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def run_path(path) -> str:
    """The run directory as every rank must see it (absolute: ranks may start in other folders)."""
    return str(Path(path).resolve())
