"""Does a conditional generator draw the class it is asked for? The default digits run, made
conditional, then 100 samples of each class judged by the digit classifier that `ganforge evaluate`
uses for class coverage.

    python benchmarks/conditional_digits.py                       # trains `ganforge train --conditional` (~2-4 min)
    python benchmarks/conditional_digits.py --run runs/00007-digits --samples 100
    python benchmarks/conditional_digits.py --generator-class code   # the alternative way of telling G the class

Prints, for each class K, the share of `sample --class K` pictures that the classifier puts in
class K, and the mean over the classes (with the classifier's own accuracy on held-out real digits,
its ceiling); and the variety within each class: the mean pixel distance between two samples of
the class, as a share of the same between two real digits of the class (a generator that draws one
picture per class whatever its latent vector scores 100% on the first figure and about 0 here).

`--generator-class code` trains the same run with the class given to G as a learned code (32
numbers per class) joined to z, instead of the scale and shift per class in every BatchNorm of G
(conditional BatchNorm, as in BigGAN) that ganforge uses, to compare the two ways of telling G
the class.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def use_class_code() -> None:
    """Make this process's DCGAN generators take the class as a learned code joined to z (before
    their first layer) instead of a scale and shift per class in every norm."""
    import torch
    from torch import nn

    from ganforge.gan import networks
    from ganforge.gan.families import dcgan, layers

    class ClassCode(nn.Embedding):
        pass

    class Generator(dcgan.DCGANGenerator):
        def __init__(self, cfg):
            super().__init__(cfg)
            self.code = ClassCode(cfg.num_classes, CODE)
            self.project[0] = nn.Linear(cfg.latent_dim + CODE, self.project[0].out_features, bias=False)
            for seq in (self.project, self.blocks):
                for i, m in enumerate(seq):
                    if isinstance(m, layers.ClassNorm):
                        seq[i] = nn.BatchNorm2d(m.scale.embedding_dim)

        def forward(self, z, y=None):
            return self.blocks(self.project(torch.cat([z, self.code(y)], 1)))

    def init_weights(module):
        if isinstance(module, ClassCode):
            nn.init.normal_(module.weight, 0.0, 1.0)  # at z's own scale
        else:
            layers.init_weights(module)

    networks.init_weights = init_weights
    networks.FAMILIES["dcgan"] = type("DCGANClassCode", (dcgan.DCGAN,), {"Generator": Generator})


CODE = 32  # length of the class code of --generator-class code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="an existing conditional digits run folder (default: train one)")
    parser.add_argument("--samples", type=int, default=100, help="samples per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the default run's)")
    parser.add_argument("--generator-class", choices=("batchnorm", "code"), default="batchnorm",
                        help="how G is told the class: conditional BatchNorm (ganforge's), or a code joined to z")
    parser.add_argument("--also", default="", help="extra training settings as key=value,key=value (e.g. ema=True)")
    args = parser.parse_args()
    if args.generator_class == "code":
        use_class_code()

    from ganforge.gan.checkpoint import load_generator
    from ganforge.gan.sampling import generate, latents
    from ganforge.data import load_data
    from ganforge.images import to_float, to_uint8
    from ganforge.metrics.classes import classifier_input, load_classifier

    run = args.run
    if run is None:
        from ganforge.gan.config import TrainConfig
        from ganforge.gan.loop import train

        extra = {k: eval(v) for k, v in (kv.split("=") for kv in args.also.split(",") if kv)}  # trusted: the caller's own settings
        if args.steps:
            extra["steps"] = args.steps
        run = tempfile.mkdtemp(prefix="conditional-digits-")
        t0 = time.perf_counter()
        train(TrainConfig(data="digits", conditional=True, seed=args.seed, **extra), run, sinks=[])
        print(f"trained {run} in {time.perf_counter() - t0:.0f} s")

    generator, cfg, step = load_generator(run)
    classifier, accuracy = load_classifier("digits")
    print(f"generator of {run} at step {step}; classifier accuracy on held-out real digits {accuracy:.1%}")
    real = load_data("digits", cfg.size, cfg.channels)
    print("class  judged as that class  variety (generated / real)")
    shares, varieties = [], []
    for k, name in enumerate(cfg.classes):
        images = generate(generator, latents(args.samples, cfg.latent_dim, args.seed + 1000 * k), torch.full((args.samples,), k))
        with torch.no_grad():
            predicted = classifier(classifier_input(to_uint8(images), 8)).argmax(1)
        shares.append(float((predicted == int(name)).float().mean()))
        mine = to_float(real.images[real.labels == k][: args.samples])
        varieties.append(float(torch.pdist(images.flatten(1)).mean() / torch.pdist(mine.flatten(1)).mean()))
        print(f"{name:>5}  {shares[-1]:24.1%}  {varieties[-1]:10.2f}")
    print(f" mean  {sum(shares) / len(shares):24.1%}  {sum(varieties) / len(varieties):10.2f}")


if __name__ == "__main__":
    main()
