"""Network families, one file each, over the shared layers in `layers.py`; `ganforge.gan.networks`
lists them. A new family is a new file here with a `Family` subclass, and one line there."""
