"""Data-parallel training with ``torch.distributed`` (imports torch).

Under ``torchrun`` (see :mod:`cnn_desktop.core.training.launch`) every process trains a copy
of the model on its own share of the training images (a seeded ``DistributedSampler``) and
DDP averages the gradients, so all copies stay identical. The backend is NCCL when every
process on a machine has a GPU of its own (``cuda:LOCAL_RANK``), else gloo (the CPU, or
several processes sharing one GPU). BatchNorm statistics are synchronised (SyncBatchNorm)
only with NCCL and more than one process.

``--batch-size`` is per process: an optimiser step learns from ``batch_size × world_size``
images, an epoch has ``world_size`` times fewer steps, and the learning rate and its
warm-up/cosine schedule are laid over those steps as given (no rescaling).

Validation runs on every rank over its own slice of the validation images; the sums of loss,
correct answers and images (training ones too) are all-reduced, so every rank sees the same
epoch figures and takes the same best-epoch and early-stopping decision.

Every collective waits at most :data:`TIMEOUT` (``CNN_DESKTOP_DDP_TIMEOUT_MIN`` minutes): a
rank that died or was interrupted ends the others with an error instead of a hang.
"""

from __future__ import annotations

import copy
import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from cnn_desktop.core.training.launch import Launch, launched

TIMEOUT = datetime.timedelta(minutes=float(os.environ.get("CNN_DESKTOP_DDP_TIMEOUT_MIN", "30")))


@dataclass
class Group:
    """This process's part in a data-parallel run (``launch`` None: the ordinary single
    process, where every method is a no-op)."""

    launch: Launch | None
    device: torch.device
    backend: str | None = None

    @property
    def world_size(self) -> int:
        """How many processes train together (1 for an ordinary run)."""
        return self.launch.world_size if self.launch else 1

    @property
    def rank(self) -> int:
        """This process's global rank (0 for an ordinary run)."""
        return self.launch.rank if self.launch else 0

    @property
    def is_main(self) -> bool:
        """Whether this process prints, checkpoints and exports (rank 0)."""
        return self.rank == 0

    @property
    def sync_batchnorm(self) -> bool:
        """BatchNorm statistics are synchronised: NCCL (CUDA) with more than one process."""
        return self.backend == "nccl" and self.world_size > 1

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model to train: DDP around ``model`` (which must already be on the device),
        with SyncBatchNorm in a copy when :attr:`sync_batchnorm`; ``model`` itself when
        single-process. DDP broadcasts rank 0's weights, so every rank starts the same."""
        if self.launch is None:
            return model
        from torch.nn.parallel import DistributedDataParallel

        if self.sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sampler(self, dataset_size: int, seed: int) -> DistributedSampler | None:
        """This rank's share of the training images, reshuffled each epoch (``set_epoch``)
        from ``seed``; None when single-process."""
        if self.launch is None:
            return None
        return DistributedSampler(
            range(dataset_size),
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=True,
            seed=seed,
        )

    def share(self, items: Sequence[Any]) -> list[Any]:
        """This rank's slice of ``items`` (every ``world_size``-th one; all when single)."""
        return list(items[self.rank :: self.world_size])

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over all ranks (the same answer on each)."""
        if self.launch is None:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu().tolist()

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` (picklable), on every rank."""
        if self.launch is None:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self._comm_device)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank gets here (at most :data:`TIMEOUT`)."""
        if self.launch is not None:
            dist.barrier(device_ids=[self.device.index] if self.backend == "nccl" else None)

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def close(self) -> None:
        """Leave the process group (safe to call twice)."""
        if self.launch is not None and dist.is_initialized():
            dist.destroy_process_group()


def join(device: torch.device) -> Group:
    """Join the ``torchrun`` job this process belongs to, if any, and place it on its device.

    ``device`` is the device asked for (``torch_device(config.device)``); with several CUDA
    devices each process on a machine takes ``cuda:LOCAL_RANK``. Single-process runs get a
    :class:`Group` that does nothing.

    Raises:
        TrainError: The ``torchrun`` variables are malformed.
    """
    launch = launched()
    if launch is None:
        return Group(None, device)
    backend = "gloo"
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count >= launch.local_world_size:
            device = torch.device("cuda", launch.local_rank)
            torch.cuda.set_device(device)
            backend = "nccl"  # one GPU per process; processes sharing a GPU stay on gloo
    dist.init_process_group(
        backend=backend,
        timeout=TIMEOUT,
        rank=launch.rank,
        world_size=launch.world_size,
        device_id=device if backend == "nccl" else None,
    )
    return Group(launch, device, backend)
