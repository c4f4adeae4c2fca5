"""The canonical frame: the one pose, place and size the network (and every shape-based step) sees a head in.

Modules: ``frame`` (:func:`canonical_frame`: axes from the arguments, the file or the shape; centre and size from a
robust cranium sphere fit) and ``orientation`` (:func:`detect_orientation`: up and front from the head's shape,
for files that state none).
"""
