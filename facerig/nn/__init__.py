"""The neural network: DiffusionNet layers, the surface operators they run on, and the packaged model.

Modules: ``network`` (:class:`RigNetwork` and its config: layers only, no files), ``operators`` (cotan Laplacian,
mass, eigenbasis and gradients of a surface, cached by content hash), ``model`` (:class:`PackagedModel`: the
bundled ``weights.pt`` / TorchScript ``model.pt`` + ``model.json`` format; the bundled model itself is data, in
``facerig/models/default``).
"""
