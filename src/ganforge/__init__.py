"""ganforge: train a GAN on your own pictures and repaint photographs in the style of a painting.

    import ganforge
    run_dir = ganforge.train(ganforge.TrainConfig(data="photos/", steps=5000))
    images = ganforge.sample_images(run_dir, n=16)
    ganforge.stylize("photo.jpg", "painting.jpg").save("out.png")
    ganforge.stylize_video("clip.mp4", "painting.jpg", "out.mp4")

Layout: `gan/` trains and samples GANs, `metrics/` and `evaluate.py` score them, `style.py`,
`stylevideo.py` and `backbones.py` do style transfer, `cli/` is the command line over all of them.
"""

from ganforge.errors import GanforgeError
from ganforge.version import __version__

# name -> module; imported on first use, so `import ganforge` stays quick (no torch).
_API = {
    "TrainConfig": "ganforge.gan.config",
    "train": "ganforge.gan.loop",
    "resume_training": "ganforge.gan.loop",
    "TrainingInterrupted": "ganforge.gan.loop",
    "sample_images": "ganforge.gan.sampling",
    "evaluate": "ganforge.scoring",
    "stylize": "ganforge.style",
    "stylize_video": "ganforge.stylevideo",
}

__all__ = ["GanforgeError", "__version__", *_API]


def __getattr__(name):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
