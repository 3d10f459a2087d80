"""One run over several processes (GPUs, machines) with ``torchrun``: the trainer's hooks.

``torchrun --nproc-per-node N -m msakit.cli train ...`` (or ``msakit train --nproc N ...``,
which launches exactly that) starts N copies of the same command; each reads ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` from its environment. Without them (or with ``WORLD_SIZE=1``)
nothing here does anything and training is the one-process run, bit for bit.

With N processes, per training step:

- **Data.** Every process draws the epoch's shuffle from ``(seed, epoch)`` exactly as one
  process does, cuts it into the same global batches of ``train.batch_size``, and takes its
  own contiguous share of each (``numpy.array_split`` of the batch's rows over the ranks): a
  ``DistributedSampler`` whose global batch is the one-process batch. Modality-dropout masks
  are drawn over the whole split from ``(seed, epoch)``, so a sample is withheld the same way.
- **Forward** on the process's share, through ``DistributedDataParallel``.
- **Objectives on the whole batch.** The share's predictions, features and model extras
  (every tensor whose first dimension is the share's rows), and the batch's positions, labels
  and absent-modality masks, are gathered from every rank, in rank order, so every objective
  sees the global batch in the one-process order: ULGM's label memory, centres and generated
  labels are updated from all samples on every rank (never per rank), the covariance alignment
  is the covariance of the whole batch, and batch-level terms (MISA's CMD, MMIM's contrastive
  pairs over ``mmilb_projected``) see every sample. The gather is differentiable: its backward
  sums the gradient over the ranks, and ``DistributedDataParallel`` averages the parameters'
  gradients, so each parameter receives the gradient of the global-batch loss. A scalar a model
  computes in its forward pass from its own rows alone (MMIM's CPC term) stays per rank, and its
  gradient is the ranks' mean (ordinary data parallelism).
- **Validation** runs on every rank over the whole split (the weights are identical after each
  step); rank 0's metrics decide the best epoch and early stopping for all.

Rank 0 alone writes the run directory (config, metrics, checkpoints, predictions, results);
the resume checkpoint holds every rank's random-number state. The run directory must be on a
filesystem every process reads (one machine, or a shared mount across machines): a resumed run
reads ``last.pt`` on every rank.

What equals one process and what is only close: the samples, their order, the global batches,
ULGM's state updates and every objective are those of one process; the forward passes see
smaller batches (each padded to its own longest item), gradients are summed in another order,
and dropout draws differ per rank, so the numbers agree to float rounding (without dropout),
not bit for bit. Two runs with the same number of processes give the same bytes (on CPU).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, fields

import numpy as np
import torch

from msakit.errors import ConfigError


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r}: not a whole number (torchrun sets it); unset it or use torchrun") from None


def world_size() -> int:
    """Processes in this run, as torchrun sets ``WORLD_SIZE`` (1 without torchrun)."""
    return max(1, _env_int("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """Rank 0 (or no torchrun): the process that writes files and prints."""
    return _env_int("RANK", 0) == 0


@dataclass
class DistContext:
    """Where this process stands in the run. ``active`` only with more than one process."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    group: object = None  # a process group of its own for the objectives' gathers (see gather)
    _shares: tuple[int, ...] = ()  # valid rows per rank of the current training batch

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- setup -----------------------------------------------------------------------------
    def device(self, device: torch.device) -> torch.device:
        """One GPU per process: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        if self.active and device.type == "cuda":
            if device.index is None:
                device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        return device

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training forward pass goes through: ``model`` itself with one process,
        else ``DistributedDataParallel`` over it (weights broadcast from rank 0)."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: a model may leave heads unused (a modality not in the run,
        # a frozen stage); device_ids=None: the module is on one device and batches are moved there.
        return DistributedDataParallel(model, device_ids=None, find_unused_parameters=True)

    def seed_rank(self, seed: int) -> None:
        """Ranks other than 0 draw their dropout from a seed of their own, a function of
        ``(seed, rank)`` (rank 0, and a one-process run, keep the run's seed)."""
        if self.active and self.rank:
            torch.manual_seed(int(np.random.SeedSequence([seed, self.rank]).generate_state(1, np.uint64)[0] % 2**63))

    # ---- collective helpers ----------------------------------------------------------------
    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def from_main(self, value):
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, value) -> list:
        """Every rank's ``value``, in rank order."""
        if not self.active:
            return [value]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, value)
        return out

    # ---- data ------------------------------------------------------------------------------
    def shard_batches(self, builder, batch_size: int, *, seed: int, epoch: int, modality_dropout=None):
        """This rank's share of each global training batch (``BatchBuilder.batches`` with
        ``shuffle=True``, then each batch's rows split over the ranks). A rank whose share of a
        short last batch is empty runs one row of it, counted as none (``gather`` drops it)."""
        order = builder.order(True, seed, epoch)
        absent = None
        if modality_dropout:
            from msakit.data.corruption import dropout_masks

            absent = dropout_masks(len(builder.split), modality_dropout, seed, epoch)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            shares = np.array_split(rows, self.world)
            self._shares = tuple(len(s) for s in shares)
            mine = shares[self.rank]
            yield builder.make_batch(mine if len(mine) else rows[:1], absent)

    def gather(self, output, batch):
        """``(output, batch)`` of this rank's share -> those of the whole global batch, in the
        one-process order, on every rank (see the module's docstring)."""
        from msakit.data.batching import Batch

        shares = self._shares
        mine = shares[self.rank]
        local_rows = len(batch)
        meta = {"index": batch.index, "labels": batch.labels, "absent": batch.absent}
        leaves: list[torch.Tensor] = []
        _collect((output.predictions, output.features, output.extras, meta), local_rows, leaves)
        gathered = [None] * len(leaves)
        # differentiable tensors: one autograd gather per dtype; the rest: a plain gather per dtype
        for differentiable in (True, False):
            by_dtype: dict[torch.dtype, list[int]] = {}
            for i, t in enumerate(leaves):
                if bool(t.requires_grad) == differentiable:
                    by_dtype.setdefault(t.dtype, []).append(i)
            for dtype in sorted(by_dtype, key=str):
                chosen = by_dtype[dtype]
                parts = [leaves[i][:mine] for i in chosen]
                if differentiable:
                    results = _GatherRows.apply(shares, self.rank, self.group, *parts)
                else:
                    with torch.no_grad():
                        results = _gather_rows(parts, shares, self.group)
                for i, r in zip(chosen, results):
                    gathered[i] = r
        it = iter(gathered)
        predictions, features, extras, meta = _rebuild((output.predictions, output.features, output.extras, meta), local_rows, it)
        whole = Batch(index=meta["index"], labels=meta["labels"], absent=meta["absent"])
        out = type(output)(**{f.name: getattr(output, f.name) for f in fields(output)})
        out.predictions, out.features, out.extras = predictions, features, extras
        return out, whole


def _collect(obj, rows: int, leaves: list) -> None:
    if isinstance(obj, torch.Tensor):
        if obj.dim() >= 1 and obj.shape[0] == rows:
            leaves.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect(v, rows, leaves)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect(v, rows, leaves)


def _rebuild(obj, rows: int, it):
    if isinstance(obj, torch.Tensor):
        return next(it) if obj.dim() >= 1 and obj.shape[0] == rows else obj
    if isinstance(obj, dict):
        return {k: _rebuild(v, rows, it) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
        return type(obj)(*(_rebuild(v, rows, it) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_rebuild(v, rows, it) for v in obj)
    return obj


def _pack(parts: list[torch.Tensor], rows: int) -> torch.Tensor:
    return torch.cat([p.reshape(rows, int(np.prod(p.shape[1:], dtype=np.int64))) for p in parts], dim=1)


def _unpack(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    out, column = [], 0
    for p in like:
        width = int(np.prod(p.shape[1:], dtype=np.int64))
        out.append(flat[:, column : column + width].reshape((flat.shape[0], *p.shape[1:])))
        column += width
    return out


def _gather_rows(parts: list[torch.Tensor], shares: tuple[int, ...], group) -> list[torch.Tensor]:
    """Rows of ``parts`` (same dtype, this rank's share) from every rank, concatenated in rank order."""
    rank = torch.distributed.get_rank()
    flat = _pack(parts, shares[rank])
    dtype = flat.dtype
    if dtype == torch.bool:  # gloo has no bool collectives
        flat = flat.to(torch.uint8)
    widest = max(shares)
    padded = flat.new_zeros((widest, flat.shape[1]))
    padded[: flat.shape[0]] = flat
    pieces = [torch.empty_like(padded) for _ in shares]
    torch.distributed.all_gather(pieces, padded.contiguous(), group=group)
    whole = torch.cat([piece[:n] for piece, n in zip(pieces, shares)]).to(dtype)
    return _unpack(whole, parts)


class _GatherRows(torch.autograd.Function):
    """``_gather_rows`` with a backward: the gradient of the whole batch is summed over the ranks
    and each rank keeps the rows of its own share."""

    @staticmethod
    def forward(ctx, shares, rank, group, *parts):
        ctx.shares, ctx.rank, ctx.group = shares, rank, group
        ctx.like = [(p.shape[1:], p.dtype, p.device) for p in parts]
        return tuple(_gather_rows(list(parts), shares, group))

    @staticmethod
    def backward(ctx, *grads):
        total = sum(ctx.shares)
        filled = [g.contiguous() if g is not None else torch.zeros((total, *shape), dtype=dtype, device=device)
                  for g, (shape, dtype, device) in zip(grads, ctx.like)]
        flat = _pack(filled, total).contiguous()
        torch.distributed.all_reduce(flat, group=ctx.group)
        start = sum(ctx.shares[: ctx.rank])
        mine = flat[start : start + ctx.shares[ctx.rank]]
        return (None, None, None, *_unpack(mine, filled))


_CONTEXT: DistContext | None = None


def context(device_type: str = "cpu") -> DistContext:
    """This process's ``DistContext``; the first call under torchrun joins the process group
    (NCCL for CUDA devices, gloo otherwise)."""
    global _CONTEXT
    world = world_size()
    if world == 1:
        return DistContext()
    if _CONTEXT is not None:
        return _CONTEXT
    dist = torch.distributed
    if not dist.is_available():
        raise ConfigError(f"WORLD_SIZE={world}: this torch build has no torch.distributed; run one process (no torchrun)")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ConfigError(f"WORLD_SIZE={world} but {name} is not set: start several processes with torchrun "
                              "(or msakit train --nproc N), which sets them")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        atexit.register(_shutdown)
    # The objectives' gathers get a gloo-or-nccl group of their own, so their order never
    # interleaves with DistributedDataParallel's gradient buckets on the default group.
    _CONTEXT = DistContext(world=world, rank=rank, local_rank=local_rank, group=dist.new_group())
    return _CONTEXT


def _shutdown() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
