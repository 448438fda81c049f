"""ganforge: train a GAN on your own pictures and repaint photographs in the style of a painting."""

__version__ = "0.1.0"

from ganforge.errors import GanforgeError

__all__ = ["GanforgeError", "__version__"]
