"""facerig's version, in a module of its own so that any layer can record it without importing the package's
public API (and with it the rig and the exporters)."""

__version__ = "0.1.0"
