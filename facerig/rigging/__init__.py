"""Rigging a head: the methods that make a :class:`facerig.rig.Rig`, and the one step that rigs and writes.

Modules: ``pipeline`` (:func:`rig_mesh`: canonical frame, operators, network, then the :mod:`facerig.anatomy`
steps), ``transfer`` (:func:`rig_by_transfer`: deformation transfer from the bundled ICT template), ``proxy``
(dense heads rigged on a decimated proxy, shapes carried back) and ``rig_and_write`` (the :class:`RigMethod`
registry and :func:`rig_and_write`, used by `facerig rig`, the batch worker and the Python API).
"""
