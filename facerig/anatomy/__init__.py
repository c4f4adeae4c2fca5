"""The rig's steps after the network, each following the head's anatomy instead of the network's output.

Modules: ``eyes`` (eyeballs found by shape, turned rigidly for gaze; the gaze convention), ``shells`` (lashes and
tear lines ride on the skin around the eye), ``rigid_parts`` (teeth, gums and tongue follow the skull or the jaw),
``face_region`` (motion stays on the face; non-heads are flagged) and ``constrain`` (:func:`constrain_to_anatomy`:
rigid parts and face region as one step, ``rig_mesh(..., anatomy=False)`` turns it off). They work on arrays in the
canonical frame and know nothing of the network.
"""
