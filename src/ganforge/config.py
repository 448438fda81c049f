"""Training settings as one dataclass: the single place each default is written.

The CLI turns every field into an option (`lr_g` -> `--lr-g`), with the help text and choices
kept in the field's metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

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


def opt(default, help: str, choices=None, **extra):
    return field(default=default, metadata={"help": help, "choices": choices, **extra})


@dataclass
class TrainConfig:
    data: str = opt("digits", "A folder of images, or a built-in dataset: digits, mnist, fashion-mnist, cifar10.", cli=False)
    arch: str = opt("dcgan", "Model family: dcgan (convolutional), mlp (fully connected) or msg (Multi-Scale Gradient GAN).", choices=("dcgan", "mlp", "msg"))
    grow: bool = opt(False, "Progressive growing: train at 8 px first, then fade in each higher resolution.")
    grow_stage_steps: int | None = opt(None, "Steps per resolution when growing; the full resolution trains for all the steps left [default: --steps divided evenly].")
    size: int | None = opt(None, "Training resolution, a power of two from 16 to 256 [default: 64 for folders, 32 for built-ins].")
    channels: int | None = opt(None, "Force 1 (gray) or 3 (colour) channels [default: detected].", choices=(1, 3))
    latent_dim: int = opt(100, "Length of the generator's random input vector.")
    g_width: int | None = opt(None, "Generator channels at its highest-resolution block (DCGAN's ngf) [default: by size].")
    d_width: int | None = opt(None, "Discriminator channels at its highest-resolution block (DCGAN's ndf) [default: by size].")
    upsample: str | None = opt(None, "Generator upsampling: transposed convolutions, or nearest upsampling + conv [default: transpose for dcgan, nearest for msg and --grow].", choices=("transpose", "nearest"))
    g_norm: str = opt("batch", "Normalisation in the generator: BatchNorm, or PixelNorm as in the progressive-growing and MSG-GAN papers.", choices=("batch", "pixel"))
    preset: str | None = opt(None, "A tested combination of the settings below: small = augmentation, EMA, half-width networks, batches of 16, equal learning rates (for folders of 100 to 2,000 pictures); options you give yourself win.", choices=("small",))
    preset_applied: bool = opt(False, "Whether the preset's values have been filled in.", cli=False)
    loss: str = opt("bce", "Adversarial loss: bce (non-saturating) or hinge.", choices=("bce", "hinge"))
    d_blur: bool = opt(False, "Blur before each of the discriminator's strided convolutions (anti-aliasing, as in StyleGAN2); it removes the lattice of dots that msg and --grow draw early on, but D no longer sees the finest detail and G fills it with stripes (see the README).")
    spectral_norm: bool = opt(False, "Spectral normalisation on the discriminator's layers (replaces its BatchNorm).")
    r1: float = opt(0.0, "R1 gradient penalty weight (gamma) on real images (0 = off).")
    ema: bool = opt(False, "Sample from an exponential moving average of the generator's weights.")
    ema_decay: float = opt(0.999, "Decay of that moving average.")
    augment: bool = opt(False, "Differentiable augmentation of everything D sees (DiffAugment).")
    augment_policy: str = opt("color,translation,cutout", "Which augmentations, comma-separated.")
    augment_p: str = opt("1", "Probability of each augmentation, or 'auto' to adapt it to D's overfitting (ADA).")
    steps: int = opt(3000, "Training steps (one discriminator and one generator update each).")
    batch_size: int = opt(64, "Images per batch.")
    lr_g: float = opt(2e-4, "Generator learning rate.")
    lr_d: float = opt(1e-4, "Discriminator learning rate (half G's: on small data D otherwise pulls ahead).")
    beta1: float = opt(0.5, "Adam beta1.")
    beta2: float = opt(0.999, "Adam beta2.")
    d_skip_below: float = opt(0.0, "Skip the discriminator's update while its loss is below this (0 = never).")
    label_smoothing: float = opt(0.1, "One-sided label smoothing: real targets become 1 - this.")
    flip: bool | None = opt(None, "Random horizontal flips [default: on for folders, off for built-ins].")
    eval_every: int = opt(0, "Log a quick KID every N steps and keep the best generator as best.safetensors (0 = off).")
    collapse_check: bool = opt(True, "Warn when the samples lose variety (mode collapse); uses the lite0 feature network.")
    auto_balance: bool = opt(False, "When the discriminator wins, skip its updates and lower its learning rate automatically.")
    seed: int = opt(0, "Random seed; the same seed on the CPU gives the same weights.")
    device: str = opt("auto", "Where to train: auto picks cuda, then mps, then cpu.", choices=("auto", "cpu", "cuda", "mps"))
    log_every: int = opt(50, "Write a metrics line every N steps.")
    sample_every: int = opt(500, "Save a sample grid and refresh losses.png every N steps.")
    checkpoint_every: int = opt(500, "Save a checkpoint every N steps.")
    keep: int = opt(3, "How many of the newest checkpoints to keep.")
    data_root: str | None = opt(None, "Where mnist, fashion-mnist and cifar10 are cached or already stored.")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_preset(self, keep=()) -> "TrainConfig":
        """The preset's values for every field still at its default, except the fields in `keep`
        (the CLI passes the options given on the command line, even where they equal the default)."""
        if self.preset is None or self.preset_applied:
            return self
        defaults = {f.name: f.default for f in fields(self)}
        chosen = {k: v for k, v in PRESETS[self.preset].items() if k not in keep and getattr(self, k) == defaults[k]}
        return replace(self, preset_applied=True, **chosen)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
