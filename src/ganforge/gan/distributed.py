"""Training on several processes, GPUs and machines: torchrun starts the processes, this module
joins them into one job.

    torchrun --nproc-per-node 2 -m ganforge train photos/      # every GPU (or 2 CPU processes)
    ganforge train photos/ --nproc-per-node 2                  # the same; torchrun started for you

Every process holds the whole run (networks, optimizers, all the pictures) and trains on its
slice of each global batch; gradients are averaged by DistributedDataParallel and BatchNorm
statistics are taken over the global batch, so a step on W processes computes what one process
computes for the same batch (up to the order of floating-point sums). Rank 0 alone reads and
writes the run folder and speaks; what it reads (settings, pictures, checkpoint) it sends to the
others, so the other machines need no copy of the run folder or the pictures.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ganforge.errors import GanforgeError, Interrupted

T = TypeVar("T")

DEFAULT_TIMEOUT = 600  # seconds a process waits for the others before the job is given up


class LostContact(Exception):
    """A collective operation failed: another process of the job died, or did not answer in time."""


class JobBroken(GanforgeError):
    """The job stopped because its processes lost contact; the message says what is safe."""

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out  # another process went silent, rather than closing its connections


@dataclass(frozen=True)
class Processes:
    """This process's place in the job; `Processes()` is a job of one."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    timeout: float = DEFAULT_TIMEOUT

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.world > 1

    def rows(self, batch_size: int) -> slice:
        """This process's rows of a global batch."""
        per = batch_size // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process on each machine: cuda becomes cuda:<local rank>."""
        if self.many and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over processes of a (small) tensor of statistics."""
        if not self.many:
            return values
        values = values.detach().clone()
        _collective(dist.all_reduce, values)
        return values / self.world

    def largest(self, value: int) -> int:
        """The largest of the processes' `value`s (a signal number, say), so that all act on it together."""
        if not self.many:
            return value
        t = torch.tensor([value], dtype=torch.int64)
        _collective(dist.all_reduce, t, op=dist.ReduceOp.MAX)
        return int(t)

    def share(self, make: Callable[[], T]) -> T:
        """`make()` on rank 0, and its result on every process; what stopped it (a GanforgeError,
        Ctrl-C) stops them all alike."""
        if not self.many:
            return make()
        box: list = [None]
        if self.is_main:
            try:
                box[0] = ("ok", make())
            except BaseException as exc:
                if isinstance(exc, GanforgeError):
                    box[0] = ("error", str(exc))
                elif isinstance(exc, KeyboardInterrupt):
                    box[0] = ("stopped", getattr(exc, "signum", 2))
                else:
                    box[0] = ("error", f"rank 0 failed: {_first_line(exc)}")
                _collective(dist.broadcast_object_list, box, src=0)
                raise
        _collective(dist.broadcast_object_list, box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise GanforgeError(value)
        if kind == "stopped":
            raise Interrupted(value)
        return value

    @contextlib.contextmanager
    def watched(self):
        """Inside, a failed collective (the other processes died or went silent) is LostContact;
        any other error stays what it is."""
        try:
            yield
        except RuntimeError as exc:
            if not self.many or not is_communication_error(exc):
                raise
            raise LostContact(_first_line(exc)) from exc


def _collective(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (RuntimeError, pickle.UnpicklingError) as exc:
        raise LostContact(_first_line(exc)) from exc


def is_communication_error(exc: BaseException) -> bool:
    """Whether a RuntimeError comes from the processes' connections (gloo raises plain RuntimeErrors)."""
    if isinstance(exc, getattr(dist, "DistError", ())) and not isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout", "socket", "peer"))


def _first_line(exc: BaseException) -> str:
    """The first line of an error, without the C++ source location gloo puts in front."""
    text = str(exc).strip().splitlines()
    return re.sub(r"^\[[^\]]*\]\s*", "", text[0]) if text else type(exc).__name__


def from_environment() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) outside torchrun."""
    try:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    except ValueError:
        raise GanforgeError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them).") from None


def is_main_process() -> bool:
    """Whether this process speaks for the job (always, outside torchrun)."""
    try:
        return from_environment()[0] == 0
    except GanforgeError:
        return True


def join(timeout: float = DEFAULT_TIMEOUT) -> Processes:
    """Join the job torchrun started (a no-op outside torchrun): gloo for CPU tensors, NCCL for CUDA
    ones where there are GPUs. `timeout`: how long a collective waits for a silent process."""
    rank, world, local_rank = from_environment()
    if world <= 1:
        return Processes(timeout=timeout)
    if dist.is_initialized():
        return Processes(rank, world, local_rank, timeout)
    if not dist.is_available() or not dist.is_gloo_available():
        raise GanforgeError("this PyTorch build has no torch.distributed gloo backend, which training on several processes needs.")
    backend = "gloo"
    if torch.cuda.is_available():
        if not dist.is_nccl_available():
            raise GanforgeError("this PyTorch build has CUDA but no NCCL backend, which training on several GPUs needs.")
        backend = "cpu:gloo,cuda:nccl"
        if local_rank >= torch.cuda.device_count():
            raise GanforgeError(f"this machine has {torch.cuda.device_count()} GPU(s) for {local_rank + 1} or more processes; "
                                f"start at most one process per GPU (--nproc-per-node {torch.cuda.device_count()}).")
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as exc:
        raise GanforgeError(f"could not join the other training processes: {_first_line(exc)}") from None
    return Processes(rank, world, local_rank, timeout)


def leave(processes: Processes) -> None:
    """Leave the job together (a process that tears its connections down while another still uses
    them aborts). Drop what holds the job's connections first (a GANTrainer, whose networks are
    wrapped in DistributedDataParallel): freed only as the interpreter exits, gloo's teardown
    aborts the process now and then."""
    if processes.many and dist.is_initialized():
        try:
            dist.barrier()
        except RuntimeError:
            pass  # another process already left with an error of its own, which it reports
        finally:
            dist.destroy_process_group()


# ---- BatchNorm over the global batch ----


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose statistics are those of the global batch, on any device.

    torch.nn.SyncBatchNorm runs only on GPUs and has no double backward (which the R1 penalty
    needs); this one is made of differentiable collectives, so it does both. Its state dict is
    BatchNorm's, so checkpoints do not depend on the number of processes.
    """

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        import torch.distributed._functional_collectives  # noqa: F401  (registers the collectives' autograd)

        def all_reduce(t):  # a sum over processes that autograd differentiates (twice, for R1), as a plain tensor
            ops = torch.ops._c10d_functional
            return ops.wait_tensor(ops.all_reduce(t, "sum", dist.group.WORLD.group_name))

        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        c, dtype, x = x.shape[1], x.dtype, x.float()  # statistics in fp32 under bf16/fp16 autocast, as BatchNorm keeps them
        local = torch.tensor([x.numel() // c], dtype=x.dtype, device=x.device)
        # One collective for the sums of x and of its squares: BatchNorm runs in every layer of both
        # networks, so each collective's latency counts more than the rounding of E[x^2] - E[x]^2.
        totals = all_reduce(torch.cat([x.sum(dims), x.square().sum(dims), local]))
        count = totals[-1]
        mean = totals[:c] / count
        var = (totals[c:2 * c] / count - mean.square()).clamp(min=0)  # biased, for normalising
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * count / (count - 1).clamp(min=1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        shift = (self.bias if self.affine else 0) - mean * scale
        return torch.addcmul(shift.view(shape), x, scale.view(shape)).to(dtype)  # x * scale + shift, per channel, in one pass


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with each BatchNorm replaced, in place, by a SyncBatchNorm sharing its parameters and buffers."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, SyncBatchNorm):
            synced = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            for key, value in [*child.named_parameters(recurse=False), *child.named_buffers(recurse=False)]:
                setattr(synced, key, value)  # the same tensors: optimizers and the EMA keep working
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            sync_batchnorm(child)
    return module
