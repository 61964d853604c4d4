"""The CLIP objective, with negatives gathered across processes."""

import warnings

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['ClipLoss', 'clip_logits']


def _distributed_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def clip_logits(
    image_embeddings: Tensor,
    location_embeddings: Tensor,
    logit_scale: Tensor,
    gather: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Similarity logits of this process's samples against all candidates.

    Both embeddings are L2-normalised. With ``gather`` and more than one
    process, the candidates are the embeddings of *every* process (gathered
    with gradients), so each sample is contrasted with the negatives of the
    whole global batch.

    Args:
        image_embeddings: ``(B, D)`` image embeddings of this process.
        location_embeddings: ``(B, D)`` location embeddings of this process.
        logit_scale: Scalar multiplier of the cosine similarities (the inverse
            temperature).
        gather: Whether to gather candidates across processes.

    Returns:
        ``(image_logits, location_logits, targets)``: image -> location logits
        ``(B, B_global)``, location -> image logits ``(B, B_global)`` and the
        column of each row's positive pair ``(B,)``.
    """
    images = F.normalize(image_embeddings, dim=-1)
    locations = F.normalize(location_embeddings, dim=-1)
    world_size, rank = _distributed_world()
    offset = 0
    all_images, all_locations = images, locations
    if gather and world_size > 1:
        local_size = torch.tensor([len(images)], device=images.device)
        sizes = [torch.zeros_like(local_size) for _ in range(world_size)]
        dist.all_gather(sizes, local_size)
        if len({int(size) for size in sizes}) == 1:
            # all_gather from torch.distributed.nn keeps the autograd graph:
            # gradients flow back to the process that produced each embedding.
            all_images = torch.cat(dist_nn.all_gather(images))  # type: ignore[no-untyped-call]
            all_locations = torch.cat(dist_nn.all_gather(locations))  # type: ignore[no-untyped-call]
            offset = rank * len(images)
        else:
            warnings.warn(
                'CLIP loss: processes hold batches of different sizes '
                f'{[int(s) for s in sizes]}; using local negatives for this step. '
                'Use drop_last=True for training.',
                RuntimeWarning,
                stacklevel=2,
            )
    targets = torch.arange(len(images), device=images.device) + offset
    image_logits = logit_scale * images @ all_locations.T
    location_logits = logit_scale * locations @ all_images.T
    return image_logits, location_logits, targets


class ClipLoss(nn.Module):
    """Symmetric cross-entropy of CLIP between images and locations.

    ``loss = (CE(image -> location) + CE(location -> image)) / 2`` over the
    cosine-similarity logits scaled by ``logit_scale``.

    With ``gather_across_processes=True`` (default) and distributed training,
    each process contrasts its samples with the embeddings of all processes:
    on N GPUs with B samples each, every sample sees N * B - 1 negatives, and
    the loss and gradients equal those of one process holding all N * B
    samples. Without it, each process only sees its own B - 1 negatives. The
    reference implementation accumulates gradients over 16 batches of 512, so
    each loss sees 511 negatives although the optimiser step covers 8192
    samples; a contrastive loss gets harder and more informative with more
    negatives, so an "8k batch" built by accumulation is not the same thing.
    """

    def __init__(self, gather_across_processes: bool = True) -> None:
        """Initialize the loss.

        Args:
            gather_across_processes: Whether to contrast against the embeddings
                of all processes in distributed training.
        """
        super().__init__()
        self.gather_across_processes = gather_across_processes

    def forward(
        self, image_embeddings: Tensor, location_embeddings: Tensor, logit_scale: Tensor
    ) -> Tensor:
        """Compute the loss.

        Args:
            image_embeddings: ``(B, D)`` image embeddings.
            location_embeddings: ``(B, D)`` location embeddings of the same samples.
            logit_scale: Scalar inverse temperature (already exponentiated).

        Returns:
            The scalar loss of this process; averaged over processes by DDP.
        """
        image_logits, location_logits, targets = clip_logits(
            image_embeddings,
            location_embeddings,
            logit_scale,
            gather=self.gather_across_processes,
        )
        return (
            F.cross_entropy(image_logits, targets)
            + F.cross_entropy(location_logits, targets)
        ) / 2
