"""Whether this process was started by ``torchrun`` (torch-free: it only reads the environment).

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (and the rendezvous address) for
every process it starts, on one machine or several (``--nnodes``); without ``WORLD_SIZE`` a run
is the ordinary single process and none of this applies. The torch side of a data-parallel
run is in :mod:`cnn_desktop.core.training.distributed`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cnn_desktop.core.training.config import TrainConfig, TrainError


@dataclass(frozen=True)
class Launch:
    """This process's place in a ``torchrun`` job.

    Attributes:
        rank: Global rank, 0 … ``world_size`` - 1 (rank 0 logs, checkpoints and exports).
        local_rank: Rank on this machine (which GPU it takes when there are several).
        world_size: How many processes train together, on all machines.
        local_world_size: How many of them run on this machine.
    """

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, checkpoints, exports and saves."""
        return self.rank == 0


def launched(environ: Mapping[str, str] | None = None) -> Launch | None:
    """This process's :class:`Launch` when ``torchrun`` started it, else None.

    Raises:
        TrainError: ``WORLD_SIZE`` is set but the variables ``torchrun`` sets are not whole
            numbers in range.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        world_size = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", "0"))
        local_world_size = int(env.get("LOCAL_WORLD_SIZE", str(world_size)))
    except ValueError:
        raise TrainError(
            "WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers (torchrun sets them)"
        ) from None
    if world_size < 1 or not 0 <= rank < world_size or not 0 <= local_rank < local_world_size:
        raise TrainError(
            f"rank {rank} (local rank {local_rank}) does not fit a world of {world_size} "
            f"process(es), {local_world_size} on this machine"
        )
    return Launch(rank, local_rank, world_size, local_world_size)


def check_distributed(config: TrainConfig) -> None:
    """Refuse what a data-parallel run cannot do (call it with the resolved config).

    Raises:
        TrainError: Head mode (its work is embedding the images once, which needs no DDP;
            sweeps and batch inference already spread it), or ``--balance sampler`` (its
            weighted sampler draws for one process; class weights work on every rank).
    """
    if config.mode == "head":
        raise TrainError(
            "head mode does not run under torchrun: it needs no DDP (its work is embedding "
            "the images once, which sweeps and batch inference already spread); run it as "
            "one process, or use --mode full or scratch with torchrun"
        )
    if config.balance == "sampler":
        raise TrainError(
            "--balance sampler draws for one process and does not run under torchrun; "
            "use --balance weights"
        )
