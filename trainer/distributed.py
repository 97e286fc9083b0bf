"""Data-parallel training across processes started by ``torchrun`` or ``accelerate launch``.

Both launchers describe the run in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``); without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) a run is a
plain single process and nothing here is used, so its steps are exactly those of a run that never
heard of data parallelism.

Why the loss curve of ``W`` processes with micro-batch ``b`` equals that of one process with
micro-batch ``W*b``:

- every rank draws the same *global* micro-batch of ``W*b`` examples from the same deterministic
  stream and keeps every ``W``-th example from its rank on (the split ``DistributedSampler``
  makes), so the data position of a checkpoint counts global micro-batches and means the same on
  every rank;
- the causal-LM loss is a mean over the trained tokens of a batch, so each rank weighs its loss by
  ``W x (its trained tokens / the global micro-batch's trained tokens)``; DDP averages the gradients
  over ranks, which gives the gradient of the global token mean, as one process would compute it;
- gradient accumulation runs under ``no_sync`` except for the last backward pass of a step, so
  each optimizer step all-reduces once, whatever the number of micro-batches or expert routes;
- a rank whose share of a short last micro-batch is empty still runs a forward and backward pass,
  with weight 0, so every rank joins each all-reduce.

Only rank 0 writes (run file, checkpoints, adapter, metrics, events); every other rank waits at
a barrier and reads what rank 0 wrote. A checkpoint also holds the random generator states of every
rank, so a resumed rank continues with its own generators (LoRA dropout stays exact).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch
import torch.distributed as dist

from trainer.data import Example, batch_to, collate
from trainer.errors import ConfigError
from trainer.methods.runtime import MethodRuntime, Route

if TYPE_CHECKING:
    from trainer.data import BatchStream


class Optimizing(Protocol):
    """What :meth:`World.accumulate` needs of the run's optimization
    (:class:`trainer.steps.Optimization`)."""

    @property
    def scaler(self) -> Any: ...

    def forward_context(self) -> contextlib.AbstractContextManager[Any]: ...


T = TypeVar("T")

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in a data-parallel run, as the launcher described it."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


def _int_variable(environ: Mapping[str, str], name: str, *, default: int | None = None) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            raise ConfigError(f"environment variable {name}: required for a data-parallel run")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}: expected an integer") from None


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """The data-parallel launch described by ``environ`` (default: ``os.environ``), or ``None``
    when there is none (``WORLD_SIZE`` absent or 1). Raises :class:`ConfigError` naming the
    variable that is missing or out of range."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return None
    world_size = _int_variable(environ, "WORLD_SIZE")
    if world_size < 1:
        raise ConfigError("environment variable WORLD_SIZE: must be at least 1")
    if world_size == 1:
        return None
    rank = _int_variable(environ, "RANK")
    if not 0 <= rank < world_size:
        raise ConfigError("environment variable RANK: must be between 0 and WORLD_SIZE - 1")
    local_rank = _int_variable(environ, "LOCAL_RANK", default=rank)
    if local_rank < 0:
        raise ConfigError("environment variable LOCAL_RANK: must not be negative")
    master_addr = environ.get("MASTER_ADDR", "").strip()
    if not master_addr:
        raise ConfigError("environment variable MASTER_ADDR: required for a data-parallel run")
    master_port = _int_variable(environ, "MASTER_PORT")
    if not 0 < master_port < 65536:
        raise ConfigError("environment variable MASTER_PORT: must be a TCP port (1-65535)")
    return LaunchEnv(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        master_addr=master_addr,
        master_port=master_port,
    )


def backend_for(device: str | None) -> str:
    """``nccl`` when the run trains on CUDA (``device`` unset with a GPU visible, or a ``cuda``
    device), else ``gloo``."""
    if device is None:
        return "nccl" if torch.cuda.is_available() else "gloo"
    return "nccl" if device.startswith("cuda") else "gloo"


class World:
    """The process group of a data-parallel run, seen from one rank."""

    def __init__(self, env: LaunchEnv, *, backend: str, owns_group: bool) -> None:
        self.env = env
        self.backend = backend
        self._owns_group = owns_group

    @classmethod
    def join(
        cls, *, device: str | None = None, environ: Mapping[str, str] | None = None
    ) -> World | None:
        """Join the run the launcher started (initializing the default process group unless the
        caller already did), or ``None`` for a single process."""
        env = launch_env(environ)
        if env is None:
            return None
        backend = backend_for(device)
        if backend == "nccl":
            if env.local_rank >= torch.cuda.device_count():
                raise ConfigError(
                    "environment variable LOCAL_RANK: no CUDA device for this rank (NCCL needs "
                    "one GPU per process; train with device='cpu' to use gloo)"
                )
            torch.cuda.set_device(env.local_rank)
        owns = False
        if not dist.is_initialized():
            dist.init_process_group(
                backend=backend,
                init_method=f"tcp://{env.master_addr}:{env.master_port}",
                rank=env.rank,
                world_size=env.world_size,
            )
            owns = True
        elif dist.get_world_size() != env.world_size or dist.get_rank() != env.rank:
            raise ConfigError(
                "environment variables RANK/WORLD_SIZE: differ from the process group already "
                "initialized"
            )
        else:
            backend = str(dist.get_backend())
        return cls(env, backend=backend, owns_group=owns)

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes files and emits events."""
        return self.env.rank == 0

    @property
    def device(self) -> str | None:
        """The device of this rank: its local GPU under NCCL, else ``None`` (the method's
        default)."""
        return f"cuda:{self.env.local_rank}" if self.backend == "nccl" else None

    def _tensor_device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", self.env.local_rank)
        return torch.device("cpu")

    def close(self) -> None:
        """Leave the process group when :meth:`join` created it."""
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False

    def barrier(self) -> None:
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.env.local_rank])
        else:
            dist.barrier()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (any picklable value)."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[no-any-return]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        found: list[Any] = [None] * self.world_size
        dist.all_gather_object(found, value)
        return found

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over ranks."""
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._tensor_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return [float(v) for v in tensor.cpu()]

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and hand its result to every rank; an exception it raises is
        raised on every rank, so no rank waits for a peer that gave up."""
        outcome: tuple[bool, Any] = (True, None)
        if self.is_main:
            try:
                outcome = (True, fn())
            except Exception as exc:
                outcome = (False, exc)
        ok, value = self.broadcast(outcome)
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (filling a shared cache), the others after it."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def wrap(self, model: torch.nn.Module, *, find_unused_parameters: bool) -> Any:
        """``model`` in :class:`DistributedDataParallel`; ``find_unused_parameters`` for methods
        whose forward pass leaves some trainable parameters out (experts picked per example)."""
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.env.local_rank] if self.backend == "nccl" else None
        return DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
        )

    def shard(self, examples: Sequence[Example]) -> list[Example]:
        """This rank's share of a global micro-batch: every ``world_size``-th example from
        ``rank`` on."""
        return list(examples[self.rank :: self.world_size])

    def accumulate(
        self,
        *,
        model: Any,
        runtime: MethodRuntime,
        optimization: Optimizing,
        stream: BatchStream,
        accumulation: int,
        pad_id: int,
    ) -> tuple[float, int]:
        """Forward and backward passes of one optimizer step over this rank's shards of the next
        ``accumulation`` global micro-batches; returns ``(loss, tokens)`` of the whole step over
        every rank (the same figures one process with the global micro-batches would report).
        Gradients are all-reduced once, in the last backward pass."""
        passes: list[tuple[Route, float, bool]] = []
        for _ in range(accumulation):
            global_batch = stream.next_batch()
            global_trained = max(sum(e.trained_tokens for e in global_batch), 1)
            shard = self.shard(global_batch)
            if not shard:
                passes.append((runtime.route(global_batch[:1])[0], 0.0, False))
                continue
            for route in runtime.route(shard):
                routed = sum(e.trained_tokens for e in route.examples)
                passes.append((route, self.world_size * routed / global_trained, True))
        scaler = optimization.scaler
        local_loss, local_tokens = 0.0, 0
        for index, (route, weight, counted) in enumerate(passes):
            last = index == len(passes) - 1
            batch = batch_to(collate(route.examples, pad_token_id=pad_id), runtime.device)
            sync = contextlib.nullcontext() if last else model.no_sync()
            with sync, route.context(), optimization.forward_context():
                loss = model(**batch, use_cache=False).loss
                scaled = loss * weight / accumulation
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            local_loss += float(loss.detach()) * weight / accumulation
            if counted:
                local_tokens += int(batch["attention_mask"].sum())
        total_loss, total_tokens = self.sum([local_loss, float(local_tokens)])
        return total_loss / self.world_size, int(total_tokens)


def routes_leave_parameters_unused(method: str) -> bool:
    """Whether a method's forward pass may leave trainable parameters without a gradient (DDP
    must then look for them): the methods that route examples to experts."""
    return method in {"moe_lora", "moe_lora_discipline"}


__all__ = [
    "LAUNCH_VARIABLES",
    "LaunchEnv",
    "World",
    "backend_for",
    "launch_env",
    "routes_leave_parameters_unused",
]
