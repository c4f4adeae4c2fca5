"""Pictures of heads and rigs: facerig's own differentiable renderer, a PNG writer and contact sheets.

Modules: ``renderer`` (cameras, rasterization, soft silhouettes, shading, displacement images: pure PyTorch; what
training compares), ``png`` (a minimal PNG encoder, no imaging library) and ``preview`` (:func:`write_contact_sheet`:
the neutral and every shape of a rig on one labelled grid, optionally as a heat view).
"""
