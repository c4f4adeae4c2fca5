"""`rig_mesh`: one neutral head in, a named FACS blendshape rig out.

The steps run in one direction: load → canonicalize → operators → network → rig. Everything that depends only
on the neutral mesh (canonical frame, operators, the network's geometry encoding) is done once per mesh; all
poses of the vocabulary then run as one batched pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facerig.anatomy.constrain import constrain_to_anatomy
from facerig.anatomy.contact import eye_patches, seal_lips
from facerig.anatomy.contact import close_lids as close_eyelids
from facerig.anatomy.rigid_parts import find_rigid_parts
from facerig.anatomy.eyes import Eyeball, find_eyeballs, turn_eyeballs
from facerig.anatomy.shells import bind_shells, find_eye_shells
from facerig.canonical.frame import CanonicalFrame, canonical_frame
from facerig.mesh import Mesh
from facerig.nn.model import PackagedModel, default_model_path, select_device
from facerig.nn.operators import Operators, get_operators, mirrored_operators
from facerig.rig import Rig
from facerig.rigging.checks import faint_rig_message
from facerig.rigging.proxy import (
    PROXY_MIN_VERTICES,
    Proxy,
    build_proxy,
    carry_shapes,
    check_memory_budget,
    dense_eyeballs,
    eyeball_rows,
    gaze_rows,
)
from facerig.timings import Stopwatch
from facerig.vocabulary import Vocabulary, load_vocabulary, mirror_permutation

# Above this many vertices the eigenbasis is solved on a coarser vertex set and carried to all vertices
# (see facerig.nn.operators); the eigen-solve otherwise dominates the cost of large heads.
EIG_MAX_VERTICES = 4000


def load_model(model: PackagedModel | str | Path | None = None, device: str = "auto") -> PackagedModel:
    """The packaged model to rig with: an instance, a path, or (None) the model bundled with facerig."""
    if isinstance(model, PackagedModel):
        return model
    return PackagedModel.load(default_model_path() if model is None else Path(model), device=select_device(device))


def rig_mesh(
    mesh: Mesh | str | Path,
    model: PackagedModel | str | Path | None = None,
    *,
    vocabulary: Vocabulary | None = None,
    device: str = "auto",
    up: str | None = None,
    front: str | None = None,
    cache_dir: str | Path | None = None,
    chunk_size: int | None = None,
    turn_eyes: bool = True,
    bind_eye_shells: bool = True,
    close_lids: bool = True,
    mirror_average: bool = False,
    offset_floor: float | None = None,
    anatomy: bool = True,
    memory_budget: int | None = None,
    proxy_min_vertices: int = PROXY_MIN_VERTICES,
) -> Rig:
    """Rig one neutral head.

    Args:
        mesh: a :class:`Mesh` or a path to any supported mesh file.
        model: a :class:`PackagedModel`, a path to one, or None for the bundled default model.
        vocabulary: poses and correctives to build; the default vocabulary when None.
        device: "auto", "cpu", "cuda" or "mps" (used when ``model`` is not already loaded).
        up, front: axis overrides such as "+Y", "-Z" when the file has no (or wrong) orientation metadata.
        cache_dir: where operators are cached (default: facerig.nn.operators.default_cache_dir()).
        chunk_size: poses per network pass (None: the model picks a size that bounds memory).
        turn_eyes: turn the head's eyeballs rigidly for the EyesLook poses (see :mod:`facerig.anatomy.eyes`) instead of
            keeping the network's output on them; a head without a clear eyeball pair is unaffected either way.
        bind_eye_shells: move the separate pieces around the eyes (eyelashes, tear lines, occlusion layers) with
            the skin they sit on instead of keeping the network's output on them (see :mod:`facerig.anatomy.shells`);
            needs the eyeball pair that ``turn_eyes`` looks for.
        close_lids: the contact steps (:mod:`facerig.anatomy.contact`): lengthen a blink that stops short of covering its
            eyeball, or keep the lids still in a blink when the neutral's eye is already shut (``close_lids``; gains in
            the rig's metadata as ``lid_gains``, 0 for a shut eye; needs the eyeball pair); lengthen a LipsTogether
            that does not seal the mouth JawDrop opens, and a LipPresser that leaves lips the neutral parts apart
            (``seal_lips``, with ``anatomy``; ``lip_gains``).
        mirror_average: average the network's prediction with that for the head's mirror image
            (:func:`predict_mirror_averaged`): lower error (held-out MAE 0.089 mm instead of 0.095 with the
            bundled model) for twice the network time, which takes a 1.75k-vertex rig past its 1 s latency target;
            off by default, on where accuracy matters more than seconds.
        offset_floor: shrink every offset the network predicts by this length, in canonical units
            (:func:`shrink_offsets`); None takes the model's own (:attr:`PackagedModel.offset_floor`), 0 keeps
            the raw output.
        anatomy: keep teeth, gums and tongue rigid with the skull or the jaw, motion on the face and pieces off
            it still, and warn when the input is not a head (see :mod:`facerig.anatomy.constrain`); False keeps the
            network's output there.
        memory_budget: bytes the rig may use (None: :data:`facerig.rigging.proxy.DEFAULT_MEMORY_BUDGET`, 2 GiB); a head
            whose rig is estimated above it is refused (:class:`facerig.rigging.proxy.RigMemoryError`) before any
            per-vertex work.
        proxy_min_vertices: a welded surface with more vertices than this is rigged through a proxy of a few
            thousand vertices and the shapes carried to every vertex (:mod:`facerig.rigging.proxy`).

    Returns:
        A :class:`Rig` whose deltas are in the input's own units and axes.
    """
    watch = Stopwatch()
    with watch("load"):
        if not isinstance(mesh, Mesh):
            from facerig.io import load_mesh

            mesh = load_mesh(mesh)
    with watch("model_load"):
        packaged = load_model(model, device)
        vocabulary = vocabulary or load_vocabulary()

    # Refuse a head whose rig cannot fit before anything per-vertex is built.
    check_memory_budget(mesh, len(vocabulary.shape_names), memory_budget)

    with watch("canonicalize"):
        # The network sees the welded surface (facerig.geometry.weld); every copy of a point gets its offset.
        surface, to_surface = mesh.welded.surface, mesh.welded.to_surface
    with watch("proxy"):
        # A dense head is rigged on a proxy (facerig.rigging.proxy); `rigged` is the surface the network sees.
        proxy = build_proxy(surface) if surface.n_vertices > proxy_min_vertices else None
        rigged = surface if proxy is None else proxy.surface
    with watch("canonicalize"):
        # A proxy has the dense head's shape, so its frame is the head's at a fraction of the sphere fits' cost.
        frame = canonical_frame(mesh if proxy is None else rigged, up=up, front=front)
        canonical_vertices = frame.to_canonical(rigged.vertices).astype(np.float32)

    with watch("operators"):
        operators = get_operators(
            canonical_vertices,
            rigged.triangles,
            k_eig=packaged.k_eig,
            cache_dir=cache_dir,
            # A proxy gets the exact eigen-solve (about a second at 5k vertices): the coarse space returned 61 of 128
            # eigenpairs on the proxy of the once-subdivided ICT head.
            eig_max_vertices=EIG_MAX_VERTICES if proxy is None else None,
        )

    with watch("network"):
        activations, row_names = vocabulary.activations()  # (1 + A + C, A): neutral, singles, combinations
        activations = packaged.align_activations(activations, vocabulary.action_names)
        if mirror_average:
            predicted = predict_mirror_averaged(packaged, canonical_vertices, rigged.triangles, operators,
                                                activations, chunk_size=chunk_size)
        else:
            predicted = packaged.predict(canonical_vertices, operators, activations, chunk_size=chunk_size)
        floor = packaged.offset_floor if offset_floor is None else float(offset_floor)
        predicted = shrink_offsets(predicted - predicted[row_names.index("neutral")], floor)  # (R, V, 3)
        faint = faint_rig_message(predicted, activations, mesh.name or "mesh")

    with watch("eyes"):
        eyeballs = (find_eyeballs(canonical_vertices, rigged.component_labels)
                    if turn_eyes or bind_eye_shells or close_lids else ())
        if turn_eyes:
            predicted = turn_eyeballs(predicted, canonical_vertices, eyeballs, activations, packaged.action_names,
                                      degrees=packaged.gaze_degrees)
        shells = find_eye_shells(canonical_vertices, rigged.component_labels, eyeballs) if bind_eye_shells else None
        predicted = bind_shells(predicted, shells)
        dense_canonical, dense_eyes = None, ()
        if proxy is not None and eyeballs and (turn_eyes or close_lids):
            dense_canonical = frame.to_canonical(surface.vertices)
            dense_eyes = dense_eyeballs(proxy, surface.component_labels, dense_canonical, eyeballs)
        lid_gains: dict[str, float] = {}
        if close_lids:
            skin = rigged.welded.skin[rigged.welded.to_surface]
            # On a proxy, blinks are measured on the dense head (its lid margin is what the user sees).
            dense = () if dense_canonical is None else eye_patches(
                dense_canonical, surface.triangles, surface.welded.skin[surface.welded.to_surface], dense_eyes,
                proxy.carry)
            predicted, lid_gains = close_eyelids(predicted, canonical_vertices, rigged.triangles, eyeballs, skin,
                                                 activations, packaged.action_names, dense=dense)

    with watch("anatomy"):
        # On a proxy the parts are the proxy's pieces (a rigid motion carried back barycentrically stays rigid).
        to_rigged = to_surface if proxy is None else np.arange(rigged.n_vertices)
        anatomy_record: dict = {}
        lip_gains: dict[str, float] = {}
        if anatomy:
            parts = find_rigid_parts(canonical_vertices, rigged.triangles, rigged.component_labels, eyeballs)
            predicted, anatomy_record = constrain_to_anatomy(predicted, canonical_vertices, rigged, eyeballs,
                                                             to_rigged, parts)
            if close_lids:
                interior = np.zeros(rigged.n_vertices, bool)
                interior[np.concatenate([parts.upper, parts.lower])] = True
                predicted, lip_gains = seal_lips(predicted, canonical_vertices, rigged.triangles, interior,
                                                 rigged.welded.skin[rigged.welded.to_surface], activations,
                                                 packaged.action_names)

    with watch("assemble"):
        shapes = frame.deltas_from_canonical(assemble_deltas(predicted, row_names, vocabulary)).astype(np.float32)
        del predicted
        if proxy is None:
            blendshape_deltas = shapes[:, to_surface]
            shell_vertices = np.zeros(0, np.int64) if shells is None else shells.vertices
        else:
            blendshape_deltas = _carry_to_dense(shapes, proxy, mesh, frame, dense_eyes if turn_eyes else (),
                                                dense_canonical, activations, row_names, vocabulary, packaged)
            shell_pieces = (np.zeros(0, np.int64) if shells is None
                            else surface.component_labels[proxy.dense_vertices[shells.vertices]])
            shell_vertices = np.flatnonzero(np.isin(surface.component_labels, shell_pieces))
    warnings = [*anatomy_record.pop("warnings", ()), *([faint] if faint else [])]

    return Rig.from_vocabulary(
        mesh,
        vocabulary,
        blendshape_deltas,
        method="network",
        frame=frame,
        eyeballs_turned=len(eyeballs) if turn_eyes else 0,
        timings=watch.timings(),
        model_id=packaged.model_id,
        model_name=packaged.name,
        eye_shell_vertices=int(np.count_nonzero(np.isin(to_surface, shell_vertices))),
        proxy_vertices=0 if proxy is None else proxy.surface.n_vertices,
        mirror_averaged=mirror_average,
        offset_floor=floor,
        lid_gains=lid_gains,
        lip_gains=lip_gains,
        device=str(packaged.device),
        warnings=warnings,
        **anatomy_record,
    )


def _carry_to_dense(
    shapes: np.ndarray, proxy: Proxy, mesh: Mesh, frame: CanonicalFrame, dense_eyes: tuple[Eyeball, ...],
    dense_canonical: np.ndarray | None, activations: np.ndarray, row_names: list[str], vocabulary: Vocabulary,
    packaged: PackagedModel,
) -> np.ndarray:
    """A proxy rig's shapes (S, P, 3) on every vertex of ``mesh`` (S, N, 3), with gaze an exact rotation of each
    dense eyeball (``dense_eyes``: empty when the eyes are not turned).

    The output is allocated once, in float32, and filled shape by shape (:func:`facerig.rigging.proxy.carry_shapes`).
    """
    surface, to_surface = mesh.welded.surface, mesh.welded.to_surface
    out = carry_shapes(shapes, proxy.carry_to(to_surface), np.empty((len(shapes), mesh.n_vertices, 3), np.float32))
    if not dense_eyes:
        return out
    eye_vertices, eye_rows = eyeball_rows(dense_canonical, dense_eyes, activations, packaged.action_names,
                                          packaged.gaze_degrees)
    # Only the shapes of rows that turn the eyes move them (a few of 95); on the others they stay still.
    turning = gaze_rows(activations, packaged.action_names, packaged.gaze_degrees)
    moving = [name for name in vocabulary.shape_names if turning[row_names.index(name)]]
    eye_shapes = frame.deltas_from_canonical(assemble_deltas(eye_rows, row_names, vocabulary, moving))
    on_eye = np.full(surface.n_vertices, -1, np.int64)
    on_eye[eye_vertices] = np.arange(len(eye_vertices))
    copies = np.flatnonzero(on_eye[to_surface] >= 0)
    eye_of_copy = on_eye[to_surface[copies]]
    for index, name in enumerate(vocabulary.shape_names):
        out[index, copies] = eye_shapes[moving.index(name), eye_of_copy] if name in moving else 0.0
    return out


def predict_mirror_averaged(
    packaged: PackagedModel,
    canonical_vertices: np.ndarray,
    triangles: np.ndarray,
    operators: Operators,
    activations: np.ndarray,
    chunk_size: int | None = None,
) -> np.ndarray:
    """The network's displacements averaged with those it predicts for the head's mirror image.

    Faces obey the reflection symmetry: the mirror image (x -> -x) of a head doing LeftBrowLowerer is the
    mirrored head doing RightBrowLowerer, whatever the head's own asymmetry. So the mirrored head is rigged with
    Left and Right actions swapped, its displacements are reflected back (vertex order is unchanged), and the
    two estimates are averaged. The result is exactly reflection-equivariant, and averaging two estimates
    whose errors are partly independent lowers the error: on the held-out ICT heads MAE fell by 8–10%
    (``bench/accuracy.py`` with and without ``--mirror-average``). The mirror's
    operators share the eigenbasis (:func:`facerig.nn.operators.mirrored_operators`): the cost is a second
    network pass.

    Args:
        packaged: the model; canonical_vertices: (V, 3); triangles: (F, 3), the mesh ``operators`` were
            computed on; activations: (B, A) in ``packaged.action_names`` order.

    Returns:
        (B, V, 3) float32 canonical-frame displacements.
    """
    reflect = np.array([-1.0, 1.0, 1.0], np.float32)
    direct = packaged.predict(canonical_vertices, operators, activations, chunk_size=chunk_size)
    mirrored = packaged.predict(
        canonical_vertices * reflect,
        mirrored_operators(operators, canonical_vertices, triangles),
        activations[:, mirror_permutation(packaged.action_names)],
        chunk_size=chunk_size,
    )
    return 0.5 * (direct + mirrored * reflect)


def shrink_offsets(offsets: np.ndarray, floor: float) -> np.ndarray:
    """Shorten every (..., 3) offset by ``floor``, to zero where it is shorter (soft thresholding).

    A FACS shape leaves most of the head exactly still; a network's output never is exactly zero there, and on
    the bundled model that residue (a few hundredths of a millimetre on every vertex of every shape) was a
    large share of its error. Soft thresholding is the proximal step of an L1 sparsity prior: it removes the
    residue, keeps the offsets continuous across the edge of the region a pose moves, and lets the exporters
    store shapes sparse. The cost is ``floor`` off each moving vertex. ``floor`` <= 0 returns ``offsets``.
    """
    if floor <= 0:
        return offsets
    lengths = np.linalg.norm(offsets, axis=-1, keepdims=True)
    return (offsets * np.maximum(0.0, 1.0 - floor / np.maximum(lengths, 1e-30))).astype(offsets.dtype, copy=False)


def assemble_deltas(predicted: np.ndarray, row_names: tuple[str, ...], vocabulary: Vocabulary,
                    shape_names: Sequence[str] | None = None) -> np.ndarray:
    """Turn the network's per-row predictions into the rig's shapes.

    Row 0 is the neutral: subtracting it removes any offset the network predicts for "no action", so an
    untouched pose is exactly zero. A corrective is ``combined − Σ single deltas`` of its bases, so that the
    linear rig with product-driven correctives reproduces the network's combined pose.

    Args:
        predicted: (R, V, 3) network output per activation row, rows named by ``row_names``.
        row_names: "neutral", the A action names, then the C corrective names.
        shape_names: only these shapes, in this order (None: all of ``vocabulary.shape_names``); only the rows
            they are made of are read.

    Returns:
        (S, V, 3) deltas in ``vocabulary.shape_names`` order (or ``shape_names``'), written into one array.
    """
    rows = {name: i for i, name in enumerate(row_names)}
    neutral = predicted[rows["neutral"]]
    bases = {corrective.name: corrective.bases for corrective in vocabulary.correctives}
    names = vocabulary.shape_names if shape_names is None else tuple(shape_names)
    shapes = np.empty((len(names),) + neutral.shape, np.result_type(predicted.dtype, neutral.dtype))
    for shape, name in zip(shapes, names):
        shape[...] = predicted[rows[name]] - neutral
        if name in bases:
            shape -= sum(predicted[rows[base]] - neutral for base in bases[name])
    return shapes
