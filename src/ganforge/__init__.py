"""ganforge: train a GAN on your own pictures and repaint photographs in the style of a painting."""

__version__ = "0.1.0"

from ganforge.errors import GanforgeError

__all__ = ["GanforgeError", "__version__", "stylize"]


def __getattr__(name):
    # `ganforge.stylize` imports torch only when first used, so `import ganforge` stays quick.
    if name == "stylize":
        from ganforge.style import stylize

        return stylize
    raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
