"""What every network family provides: its two networks, and an adapter that tells the trainer
what the discriminator sees.

The trainer is written once against `Family`; a family that needs something else (a pyramid of
images, a growing resolution) overrides the few methods below instead of adding a branch there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a generator or discriminator; it travels inside checkpoints and
    safetensors metadata, so `ganforge sample` can rebuild a generator from its file alone."""

    arch: str = "dcgan"
    size: int = 32
    channels: int = 1
    latent_dim: int = 100
    g_width: int = 64
    d_width: int = 64
    upsample: str = "transpose"
    g_norm: str = "batch"  # convolutional generators: batch (BatchNorm) or pixel (PixelNorm)
    g_noise: bool = False  # fastgan: noise injection; files written before it existed had none
    spectral_norm: bool = False  # discriminator only
    d_blur: bool = False  # blur before D's strided convs; files written before it existed had none
    classes: tuple[str, ...] = ()  # class names of a class-conditional pair; () for an unconditional one

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))  # JSON gives a list

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Family:
    """A network family. Subclasses set `name`, `Generator` and `Discriminator` (each built from a
    ModelConfig) and override the adapter methods where their training differs from the plain
    "D sees one image per sample" case.

    An instance is the adapter for one training run: `Family(model_cfg, train_cfg)`.
    """

    name: ClassVar[str]
    title: ClassVar[str]  # how the terminal names it: "Training <title> at 64px ..."
    Generator: ClassVar[type[nn.Module]]
    Discriminator: ClassVar[type[nn.Module]]
    channels_last: ClassVar[bool] = True  # oneDNN's convolutions run faster on NHWC tensors
    default_upsample: ClassVar[str] = "transpose"  # when --upsample is left to choose
    unused_parameters: ClassVar[bool] = False  # whether a step may leave some parameters out (a growing resolution)
    min_size: ClassVar[int] = 16  # the smallest --size the family builds; also its default size for the built-ins when larger

    def __init__(self, model: ModelConfig, train=None):
        """`train`: the run's TrainConfig, for families with schedules of their own (None to build only)."""
        self.model, self.train = model, train

    def fake(self, G: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None):
        """What G makes in a training step, in the form D takes (y: class labels of a conditional pair)."""
        return G(z) if y is None else G(z, y)

    def judge_real(self, D: nn.Module, x, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits (B,) on what it sees of a real batch, and a loss of D's own on it (a
        reconstruction, say) to add to its adversarial loss, or None."""
        return (D(x) if y is None else D(x, y)), None

    @classmethod
    def default_width(cls, size: int, channels: int) -> int:
        """Channels of G's and D's highest-resolution blocks when --g-width/--d-width are not given:
        the DCGAN paper's 64, narrowed above 64 px so the widest (8x) layers stay affordable on a
        laptop CPU, and halved for gray pictures, which hold a third of the information (on the
        digits, 32 learns as well as 64 at a third of the cost)."""
        width = {16: 64, 32: 64, 64: 64, 128: 32, 256: 16}[size]
        return width // 2 if channels == 1 else width

    def real(self, real: torch.Tensor, G: nn.Module):
        """What D sees of a real batch (B, C, H, W) in [-1, 1]."""
        return real

    def detach(self, fake):
        return fake.detach()

    def begin_step(self, step: int, nets: list[nn.Module]) -> None:
        """Called before every step with G, D and the EMA generator; for schedules."""

    def ema_decay(self, step: int, decay: float) -> float:
        """The moving average's decay at `step`."""
        return decay

    def progress(self, G: nn.Module) -> dict:
        """Extra fields for the metrics row (a growing resolution, say)."""
        return {}

    def sample_resolution(self, G: nn.Module) -> int | None:
        """The resolution G draws at now, when below the full size (it then shows upsampled)."""
        return None
