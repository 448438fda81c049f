"""Training settings as one dataclass: the single place each default, help text and bound is written.

The CLI turns every field into an option (`lr_g` -> `--lr-g`); `TrainConfig.validate` refuses
what the CLI refuses, so the Python API and the command line accept exactly the same settings.
The config is what the user asked for: what training changes as it goes (auto-balance, rollbacks)
lives in the trainer's state and its checkpoints, never here.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Annotated

from ganforge.devices import DEVICE
from ganforge.errors import GanforgeError
from ganforge.options import Opt, check

ARCHS = ("dcgan", "mlp", "msg", "fastgan")  # progressive growing is `--grow` on the convolutional family
LOSSES = ("bce", "hinge")
UPSAMPLES = ("transpose", "nearest")
G_NORMS = ("batch", "pixel")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SIZES = (16, 32, 64, 128, 256, 512)  # 512 for the fastgan family only
SEED_RANGE = 2**40  # seeds are scaled by about 2e6 and must stay within torch's 64 bits

# What `--preset small` switches on, each choice measured on ~200 photos at 64 px with 20 minutes of
# one CPU core (benchmarks/small_data.py):
# - DiffAugment at p = 1 with colour and translation, so D cannot memorise a small folder; without
#   cutout D learns the pictures' detail sooner (KID 0.459 against 0.502 with it), and
#   `--augment-p auto` scored worse in that budget;
# - widths 32 and batches of 16: about ten times the plain run's steps in the same time, where a few
#   hundred pictures need neither DCGAN's full width nor its batch of 64; widths 16 scored worse;
# - D learning as fast as G (2e-4): with augmentation in the way it no longer overpowers G, and its
#   usual half rate held it back (0.457 against 0.502; with both changes 0.413);
# - an EMA generator with a half-life of about 280 steps (4,500 images); 0.999 lagged behind.
PRESETS = {
    "small": dict(augment=True, augment_p="1", augment_policy="color,translation", lr_d=2e-4, ema=True, ema_decay=0.9975,
                  g_width=32, d_width=32, batch_size=16),
}
# What `--conditional` switches on besides the classes, as the projection discriminator's paper
# trains it. On the conditional digits run (benchmarks/conditional_digits.py) D with BatchNorm and
# the BCE loss let G draw one picture per class whatever its latent vector (variety within a class
# 0.03 of the data's, though 98% of the samples were of the class asked for), or ignore the class
# (28%) with conditional BatchNorm in G; with spectral norm and the hinge loss: 99.7% and 0.90.
CONDITIONAL = dict(spectral_norm=True, loss="hinge")
# What `--arch fastgan` trains with unless told otherwise: as its paper, the hinge loss, DiffAugment
# (colour and translation), an EMA generator and small batches; measured on the small-data
# benchmark's faces (6 CPU-minutes each, KID): D without spectral norm (0.264 against 0.354 with it,
# D at 2e-4) and learning twice as fast as G (without spectral norm 0.211; with it 0.245, and 0.357
# at 8e-4), and the EMA of `--preset small`, whose half-life suits runs of a few thousand steps.
# It is not what `--preset small` picks: over 15 CPU-minutes at 64 px it beat the preset on the
# faces (KID 0.077 against 0.110) but not on the icons (0.645 against 0.525); see the README.
ARCH_DEFAULTS = {
    "fastgan": dict(loss="hinge", augment=True, augment_policy="color,translation", ema=True, ema_decay=0.9975, lr_d=4e-4, batch_size=16),
}



@dataclass(frozen=True)
class TrainConfig:
    data: Annotated[str | os.PathLike, Opt("A folder of images, or a built-in dataset: digits, mnist, fashion-mnist, cifar10.", cli=False)] = "digits"
    arch: Annotated[str, Opt("Model family: dcgan (convolutional), mlp (fully connected), msg (Multi-Scale Gradient GAN) or fastgan (skip-layer "
                                 "excitation and a self-supervised discriminator, for small folders; 64 to 512 px).", choices=ARCHS)] = "dcgan"
    conditional: Annotated[bool, Opt("Class-conditional training: each subfolder of the data folder is a class (the built-in datasets bring "
                                     "their labels); G learns to draw the class it is asked for (sample --class), D judges picture and class "
                                     "together. Turns on --spectral-norm and --loss hinge unless you choose otherwise.")] = False
    transparent: Annotated[bool, Opt("Keep the pictures' transparency: train on four channels (RGBA) instead of compositing them on white; "
                                     "samples are PNGs with transparency, grids show them on a checkerboard.")] = False
    grow: Annotated[bool, Opt("Progressive growing: train at 8 px first, then fade in each higher resolution.")] = False
    grow_stage_steps: Annotated[int | None, Opt("Steps per resolution when growing; the full resolution trains for all the steps left.",
                                        min=1, default_text="--steps divided evenly")] = None
    size: Annotated[int | None, Opt("Training resolution, a power of two from 16 to 256 (64 to 512 for fastgan).",
                                             default_text="64 for folders and fastgan, 32 for built-ins")] = None
    channels: Annotated[int | None, Opt("Force 1 (gray) or 3 (colour) channels.", choices=(1, 3), default_text="detected")] = None
    latent_dim: Annotated[int, Opt("Length of the generator's random input vector.", min=1)] = 100
    g_width: Annotated[int | None, Opt("Generator channels at its highest-resolution block (DCGAN's ngf).", min=1, default_text="by size")] = None
    d_width: Annotated[int | None, Opt("Discriminator channels at its highest-resolution block (DCGAN's ndf).", min=1, default_text="by size")] = None
    upsample: Annotated[str | None, Opt("Generator upsampling: transposed convolutions, or nearest upsampling + conv.", choices=UPSAMPLES,
                                default_text="transpose for dcgan, nearest for msg and --grow")] = None
    g_norm: Annotated[str, Opt("Normalisation in the generator: BatchNorm, or PixelNorm as in the progressive-growing and MSG-GAN papers.", choices=G_NORMS)] = "batch"
    g_noise: Annotated[bool, Opt("fastgan: noise injection, per-pixel Gaussian noise after each convolution of G's two-convolution blocks, "
                                 "scaled by a learnt weight per layer that starts at 0; drawn afresh in training, one fixed draw saved "
                                 "with the weights when sampling, so that samples and walks repeat.")] = False
    preset: Annotated[str | None, Opt("A tested combination of the settings below: small = augmentation, EMA, half-width networks, batches of 16, "
                              "equal learning rates (for folders of 100 to 2,000 pictures); options you give yourself win.", choices=tuple(PRESETS))] = None
    preset_applied: Annotated[bool, Opt("Whether the preset's (and --conditional's) values have been filled in (so that a saved config is never "
                                        "filled twice).", cli=False)] = False
    loss: Annotated[str, Opt("Adversarial loss: bce (non-saturating) or hinge.", choices=LOSSES)] = "bce"
    d_blur: Annotated[bool, Opt("Blur before each of the discriminator's strided convolutions (anti-aliasing, as in StyleGAN2); it removes the "
                        "lattice of dots that msg and --grow draw early on, but D no longer sees the finest detail and G fills it with "
                        "stripes (see the README).")] = False
    spectral_norm: Annotated[bool, Opt("Spectral normalisation on the discriminator's layers (replaces its BatchNorm).")] = False
    r1: Annotated[float, Opt("R1 gradient penalty weight (gamma) on real images (0 = off).", min=0)] = 0.0
    ema: Annotated[bool, Opt("Sample from an exponential moving average of the generator's weights.")] = False
    ema_decay: Annotated[float, Opt("Decay of that moving average.", min=0, below=1)] = 0.999
    ema_warmup: Annotated[bool, Opt("Let the moving average start short and lengthen up to --ema-decay, so that early samples show what "
                                    "G has learnt rather than its first weights.")] = True
    augment: Annotated[bool, Opt("Differentiable augmentation of everything D sees (DiffAugment).")] = False
    augment_policy: Annotated[str, Opt("Which augmentations, comma-separated: color, translation, cutout.")] = "color,translation,cutout"
    augment_p: Annotated[str, Opt("Probability of each augmentation, or 'auto' to adapt it to D's overfitting (ADA).")] = "1"
    steps: Annotated[int, Opt("Training steps (one discriminator and one generator update each).", min=1)] = 3000
    batch_size: Annotated[int, Opt("Images per batch.", min=1)] = 64
    lr_g: Annotated[float, Opt("Generator learning rate.", above=0)] = 2e-4
    lr_d: Annotated[float, Opt("Discriminator learning rate (half G's: on small data D otherwise pulls ahead).", above=0)] = 1e-4
    beta1: Annotated[float, Opt("Adam beta1.", min=0, below=1)] = 0.5
    beta2: Annotated[float, Opt("Adam beta2.", min=0, below=1)] = 0.999
    d_skip_below: Annotated[float, Opt("Skip the discriminator's update while its loss is below this (0 = never).", min=0)] = 0.0
    label_smoothing: Annotated[float, Opt("One-sided label smoothing: real targets become 1 - this.", min=0, below=1)] = 0.1
    flip: Annotated[bool | None, Opt("Random horizontal flips.", default_text="on for folders, off for built-ins")] = None
    eval_every: Annotated[int, Opt("Log a quick KID every N steps and keep the best generator as best.safetensors (0 = off).", min=0)] = 0
    collapse_check: Annotated[bool, Opt("Warn when the samples lose variety (mode collapse); uses the lite0 feature network.")] = True
    auto_balance: Annotated[bool, Opt("When the discriminator wins, skip its updates and lower its learning rate automatically.")] = False
    seed: Annotated[int, Opt("Random seed; the same seed on the CPU gives the same weights.", min=-SEED_RANGE, max=SEED_RANGE)] = 0
    device: Annotated[str, DEVICE] = "auto"
    precision: Annotated[str, Opt("Arithmetic of the forward and backward passes (autocast): auto is bf16 on CUDA GPUs that support it, "
                                  "fp32 elsewhere; fp16 (with gradient scaling) needs CUDA. The R1 penalty is always fp32.",
                                  choices=PRECISIONS)] = "auto"
    compile: Annotated[bool, Opt("Compile G and D with torch.compile (faster steps after a slow first one); where the compiler cannot "
                                 "run, a warning and the usual eager mode.")] = False
    sync_batchnorm: Annotated[bool, Opt("On several processes, BatchNorm statistics over the global batch, so that the result does not depend "
                                        "on the number of processes; off, each process normalises its own slice (faster on CPUs).")] = True
    cuda_fast: Annotated[bool, Opt("On CUDA: TF32 matmuls and convolutions, and cuDNN's autotuner; turn off for runs that repeat "
                                   "bit for bit on the same GPU.")] = True
    tensorboard: Annotated[bool, Opt("Also write losses, D's outputs, speed, KID and the sample grids as TensorBoard events in the run "
                                     "folder (`tensorboard --logdir runs`); needs pip install \"ganforge[tensorboard]\".")] = False
    log_every: Annotated[int, Opt("Write a metrics line every N steps.", min=1)] = 50
    sample_every: Annotated[int, Opt("Save a sample grid and refresh losses.png every N steps.", min=1)] = 500
    checkpoint_every: Annotated[int, Opt("Save a checkpoint every N steps.", min=1)] = 500
    keep: Annotated[int, Opt("How many of the newest checkpoints to keep.", min=1)] = 3
    data_root: Annotated[str | None, Opt("Where mnist, fashion-mnist and cifar10 are cached or already stored.")] = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """From a saved config.json section; keys this version does not know are dropped."""
        names = {f.name for f in fields(cls)}
        if "ema_warmup" not in d:  # written before the warm-up existed: the run had none
            d = {**d, "ema_warmup": False}
        if "precision" not in d:  # written before these existed: the run trained in fp32, without TF32
            d = {**d, "precision": "fp32", "cuda_fast": False}
        return cls(**{k: v for k, v in d.items() if k in names})

    def validate(self) -> None:
        """Raise GanforgeError, in one sentence naming the setting, for anything training would refuse."""
        from ganforge.gan.augment import parse_policy

        check(TrainConfig, self.to_dict())
        if not isinstance(self.data, (str, os.PathLike)) or not os.fspath(self.data):
            raise GanforgeError(f"DATA must name a folder of images or a built-in dataset, not {self.data!r}.")
        if self.size is not None and self.size not in SIZES:
            raise GanforgeError(f"--size must be a power of two from 16 to 256 (512 with --arch fastgan), not {self.size}.")
        if self.arch == "fastgan" and self.size is not None and self.size < 64:
            raise GanforgeError(f"--arch fastgan trains at 64 to 512 px, not --size {self.size}; use --arch dcgan for smaller pictures.")
        if self.g_noise and self.arch != "fastgan":
            raise GanforgeError(f"--g-noise is part of the fastgan family; add --arch fastgan, or leave --g-noise out for --arch {self.arch}.")
        if self.size == 512 and self.arch != "fastgan":
            raise GanforgeError(f"--size 512 needs --arch fastgan; --arch {self.arch} goes up to 256.")
        if self.grow_stage_steps is not None and not self.grow:
            raise GanforgeError("--grow-stage-steps needs --grow: only a growing run trains in stages.")
        if self.transparent and self.channels is not None:
            raise GanforgeError(f"--transparent trains on four channels (colour and alpha); it cannot be combined with --channels {self.channels}.")
        if self.grow and self.arch != "dcgan":
            raise GanforgeError(f"--grow builds its own convolutional networks; it cannot be combined with --arch {self.arch}.")
        parse_policy(self.augment_policy)
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise GanforgeError('--tensorboard needs the tensorboard package: pip install "ganforge[tensorboard]".')
        if self.augment_p != "auto":
            try:
                ok = 0 <= float(self.augment_p) <= 1
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise GanforgeError(f"--augment-p must be a probability from 0 to 1 or 'auto', not {self.augment_p!r}.")


def apply_preset(cfg: TrainConfig, explicit=()) -> TrainConfig:
    """`cfg` with its preset's values (and `--conditional`'s) in every field still at its default,
    except the fields named in `explicit` (the CLI passes the options given on its command line,
    even where they equal the default). A config already filled in is returned as it is."""
    if cfg.preset_applied or (cfg.preset is None and not cfg.conditional and cfg.arch not in ARCH_DEFAULTS):
        return cfg
    if cfg.preset is not None and cfg.preset not in PRESETS:
        raise GanforgeError(f"--preset must be one of {', '.join(PRESETS)}, not {cfg.preset!r}.")
    defaults = {f.name: f.default for f in fields(cfg)}
    wanted = {**ARCH_DEFAULTS.get(cfg.arch, {}), **(CONDITIONAL if cfg.conditional else {}), **(PRESETS[cfg.preset] if cfg.preset else {})}
    chosen = {k: v for k, v in wanted.items() if k not in explicit and getattr(cfg, k) == defaults[k]}
    return replace(cfg, preset_applied=True, **chosen)
