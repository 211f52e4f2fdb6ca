"""medir: medical image restoration with learned priors.

The public surface is small: ``medir.io`` reads and writes scans as
:class:`medir.io.Image`, ``medir.models`` builds architectures,
``medir.engine`` restores, trains and stores models, ``medir.metrics``
measures. Heavy optional parts (SAM, BM3D, phantoms) load lazily.
"""

__version__ = "0.1.0"
