"""Building a small ICT training set and reading it back: splits, labels, carried ground truth, annotations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facerig.errors import DatasetError
from facerig.eval.datasets import load_sample, read_manifest, sample_triangles
from facerig.trainer.dataset import (
    BuildOptions,
    HeadDataset,
    SampleSpec,
    build_ict_dataset,
    build_sample,
    head_geometry,
    make_context,
    plan_samples,
)
from facerig.trainer.ict import PARTS, REGIONS
from facerig.geometry.remesh import SurfaceIndex, connected_pieces

# 3 identities per kind: one each for train, val and test; 4 + 3 samples.
OPTIONS = BuildOptions(
    rigged=3, unrigged=3, factor_rigged=2, factor_unrigged=1, seed=11, min_vertices=1500, max_vertices=2500,
    augment_fraction=1.0,
)


@pytest.fixture(scope="module")
def dataset(ict_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("ict") / "dataset"
    manifest = build_ict_dataset(None, root, OPTIONS, model=ict_model, workers=2)
    return root, manifest


def _entries(manifest, **where):
    return [e for e in manifest["samples"] if all(e[k] == v for k, v in where.items())]


def _spec(entry):
    return SampleSpec(**{k: v for k, v in entry.items() if k in SampleSpec.__dataclass_fields__})


def _source_deltas(model, manifest, name):
    """(V, 3) ICT-topology ground truth of one action: the sum of its ICT shapes."""
    from facerig.vocabulary import load_vocabulary

    shapes = load_vocabulary().ict_recipes()[name]
    return sum(model.expression(s).astype(np.float64) for s in shapes)


def test_plan_counts_and_identity_splits():
    specs, splits = plan_samples(OPTIONS)
    for kind, n, factor in (("rigged", 3, 2), ("unrigged", 3, 1)):
        split = splits[kind]
        assert sorted(split["train"] + split["val"] + split["test"]) == list(range(n))
        assert split["val"] and split["test"]
        mine = [s for s in specs if s.kind == kind]
        assert len(mine) == factor * len(split["train"]) + len(split["val"]) + len(split["test"])
        for spec in mine:
            # Blend partners come from the same split: held-out identities never leak into training.
            assert spec.identity in split[spec.split] and spec.partner in split[spec.split]
            assert spec.augment is False or spec.split == "train"
    assert plan_samples(OPTIONS) == (specs, splits)


def test_manifest_counts_splits_and_files(dataset):
    root, manifest = dataset
    assert read_manifest(root) == manifest
    assert manifest["seed"] == 11 and manifest["builder_version"] >= 1
    assert manifest["options"]["factor_rigged"] == 2
    assert manifest["counts"]["total"] == len(manifest["samples"]) == len(plan_samples(OPTIONS)[0])
    assert len(manifest["shapes"]) == 95 and manifest["shapes"][:2] == ["Corrugator", "ChinRaiser"]
    assert (root / "LICENSE-ICT-FaceKit.txt").read_text().startswith("MIT License")
    for kind in ("rigged", "unrigged"):
        train = {e["identity"] for e in _entries(manifest, kind=kind, split="train")}
        train |= {e["partner"] for e in _entries(manifest, kind=kind, split="train")}
        held = {e["identity"] for e in _entries(manifest, kind=kind) if e["split"] != "train"}
        assert train and held and not train & held
    for entry in manifest["samples"]:
        assert (root / entry["file"]).is_file()
    json.dumps(manifest, allow_nan=False)  # plain JSON


def test_label_mask_and_corrective_targets(dataset):
    root, manifest = dataset
    shapes = manifest["shapes"]
    labelled = dict(zip(shapes, manifest["labelled"]))
    assert not labelled["Corrugator"] and not labelled["FlatPucker"]
    assert labelled["JawDrop"] and labelled["LeftEyeClosed"]
    correctives = shapes[47:]
    assert all(labelled[c] == all(labelled[b] for b in c.split("_")) for c in correctives)
    rigged = load_sample(root / _entries(manifest, kind="rigged")[0]["file"])
    np.testing.assert_array_equal(rigged["labelled"], manifest["labelled"])
    assert rigged["deltas"].shape == (95, len(rigged["vertices"]), 3) and rigged["deltas"].dtype == np.float16
    # Linear ICT: combined − Σ singles is exactly zero for every corrective.
    assert not rigged["deltas"][47:].any()
    assert np.abs(rigged["deltas"][shapes.index("JawDrop")]).max() > 1.0
    unrigged = load_sample(root / _entries(manifest, kind="unrigged")[0]["file"])
    assert "deltas" not in unrigged and not unrigged["labelled"].any()


def test_ground_truth_is_carried_by_barycentric_projection(dataset, ict_model):
    root, manifest = dataset
    entry = _entries(manifest, kind="rigged", split="test")[0]
    sample = load_sample(root / entry["file"])
    np.testing.assert_array_equal(sample["transform"], np.eye(4))
    jaw = _source_deltas(ict_model, manifest, "JawDrop")
    got = sample["deltas"][manifest["shapes"].index("JawDrop")].astype(np.float64)
    src, bary = sample["source_vertices"], sample["source_barycentrics"].astype(np.float64)
    # Where a new vertex coincides with a source vertex, its ground truth is that vertex's.
    on_vertex = bary.max(axis=1) > 1 - 1e-6
    assert on_vertex.sum() > 50
    corner = src[on_vertex, bary[on_vertex].argmax(axis=1)]
    np.testing.assert_allclose(got[on_vertex], jaw[corner], atol=2e-3)  # float16 storage
    # Everywhere else it is the barycentric blend of the source triangle's ground truth.
    np.testing.assert_allclose(got, np.einsum("vk,vkd->vd", bary, jaw[src]), atol=2e-3)


def test_eyes_look_turns_each_eyeball_about_its_centre(ict_model):
    from facerig.geometry import fit_sphere
    from facerig.trainer.dataset import gaze_deltas
    from facerig.trainer.ict import PARTS
    from facerig.vocabulary import load_vocabulary

    actions = load_vocabulary().action_names
    deltas = gaze_deltas(ict_model.neutral, ict_model.part_of_vertex(), 25.0)
    look = {name: deltas[actions.index(name)].astype(np.float64) for name in
            ("EyesLookLeft", "EyesLookRight", "EyesLookUp", "EyesLookDown")}
    others = [i for i, name in enumerate(actions) if name not in look]
    assert not deltas[others].any()
    eyeballs = {name: np.arange(lo, hi + 1) for name, lo, hi, _ in PARTS if name.startswith("eyeball_")}
    moved = np.zeros(len(ict_model.neutral), bool)
    for vertices in eyeballs.values():
        moved[vertices] = True
        points = ict_model.neutral[vertices]
        centre, _ = fit_sphere(points)
        radius = np.linalg.norm(points - centre, axis=1)
        cornea = points[:, 2] > centre[2] + 0.9 * radius.max()  # the front of the eye (+Z)
        for name, delta in look.items():
            # a rotation: every vertex keeps its distance to the centre; the cornea travels r sin 25° (± cos term)
            np.testing.assert_allclose(np.linalg.norm(points + delta[vertices] - centre, axis=1), radius, rtol=1e-5)
            axis, sign = {"EyesLookLeft": (0, 1), "EyesLookRight": (0, -1), "EyesLookUp": (1, 1),
                          "EyesLookDown": (1, -1)}[name]
            front_motion = sign * delta[vertices][cornea, axis].mean()
            assert 0.35 * radius.max() < front_motion < 0.45 * radius.max(), name  # sin 25° = 0.42
    assert not np.concatenate([d[~moved] for d in look.values()]).any()  # lids etc. keep ICT's own shapes


def test_heads_lie_on_their_source_surface_with_components_kept(dataset, ict_model):
    root, manifest = dataset
    spec = _spec(_entries(manifest, kind="unrigged", split="val")[0])
    sample = load_sample(root / f"samples/{spec.name}.npz")
    head = head_geometry(ict_model, OPTIONS, spec)
    vertices = sample["vertices"].astype(np.float64)
    _, _, distance = SurfaceIndex(head, ict_model.triangles).query(vertices)
    assert distance.max() < 1e-4  # float32 storage of cm coordinates
    _, _, back = SurfaceIndex(vertices, sample_triangles(sample)).query(head[::4])
    assert back.mean() < 0.15 and back.max() < 1.5  # cm
    assert connected_pieces(len(vertices), sample_triangles(sample)).max() + 1 == 56
    assert set(np.unique(sample["regions"])) == set(range(len(REGIONS)))
    assert 1500 * 0.9 <= len(vertices) <= 2500 * 1.1


def test_augmented_samples_are_cropped_and_jittered(dataset):
    root, manifest = dataset
    augmented = [e for e in _entries(manifest, split="train") if e["augment"]]
    assert augmented, "the seed gives some augmented samples"
    part_names = [name for name, *_ in PARTS]
    for entry in augmented:
        sample = load_sample(root / entry["file"])
        present = {part_names[p] for p in np.unique(sample["parts"])}
        assert not present & set(entry["dropped"])
        assert "face" in present
        linear = sample["transform"][:3, :3]
        scale = np.cbrt(np.linalg.det(linear))
        assert scale == pytest.approx(entry["scale"])
        np.testing.assert_allclose(linear @ linear.T / scale**2, np.eye(3), atol=1e-9)  # a rotation
        assert entry["components"] == connected_pieces(len(sample["vertices"]), sample_triangles(sample)).max() + 1


def test_landmarks_and_eyelids_are_carried(dataset, ict_model):
    root, manifest = dataset
    for entry in _entries(manifest, split="test"):
        spec = _spec(entry)
        sample = load_sample(root / entry["file"])
        head = head_geometry(ict_model, OPTIONS, spec)
        vertices = sample["vertices"].astype(np.float64)
        tris = sample_triangles(sample)
        points = np.einsum("lk,lkd->ld", sample["landmark_barycentrics"], vertices[tris[sample["landmark_triangles"]]])
        source = head[ict_model.landmarks]
        # The exact point is the closest point of the coarser surface: off by at most its deviation (cm).
        assert np.linalg.norm(points - source, axis=1).max() < 0.6
        # The landmark vertex is the nearest vertex of the landmark's own component.
        pieces = connected_pieces(len(vertices), tris)
        piece = pieces[tris[sample["landmark_triangles"], 0]]
        distance = np.linalg.norm(vertices[None] - points[:, None], axis=2)
        distance[pieces[None] != piece[:, None]] = np.inf
        np.testing.assert_array_equal(sample["landmarks"], distance.argmin(axis=1))
        # On the face; an inner-lip landmark's nearest vertex may sit just inside the lip, in the mouth.
        regions = np.asarray(REGIONS)[sample["regions"][sample["landmarks"]]]
        assert set(regions) <= {"face", "mouth_interior"} and (regions == "face").sum() >= 64
        upper, lower = sample["eyelid_pairs"].T
        assert (points[upper, 1] > points[lower, 1]).all()  # upper lid above lower lid (+Y up)
        assert (points[sample["eyelid_pairs"][:2].ravel(), 0] < 0).all()  # first two pairs: right eye, -X


def test_same_seed_same_sample_whatever_the_worker_count(dataset, ict_model, tmp_path):
    root, manifest = dataset
    entry = next(e for e in _entries(manifest, kind="rigged", split="train") if e["augment"])
    spec = _spec(entry)
    again = build_sample(make_context(ict_model, OPTIONS, tmp_path), spec)
    assert again == entry
    first, second = load_sample(root / entry["file"]), load_sample(tmp_path / entry["file"])
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


def test_torch_dataset_reads_splits(dataset):
    root, manifest = dataset
    train = HeadDataset(root, "train")
    test = HeadDataset(root, "test", kind="rigged")
    assert len(train) == manifest["counts"]["rigged_train"] + manifest["counts"]["unrigged_train"]
    assert len(test) == manifest["counts"]["rigged_test"]
    item = test[0]
    v = item["vertices"].shape[0]
    assert item["vertices"].dtype == torch.float32 and item["triangles"].dtype == torch.int64
    assert item["deltas"].shape == (95, v, 3) and item["labelled"].shape == (95,)
    assert int(item["triangles"].max()) == v - 1 and item["rigged"]
    assert item["landmarks"].shape == (68,) and item["eyelid_pairs"].shape == (4, 2)
    with pytest.raises(DatasetError, match="unknown split"):
        HeadDataset(root, "holdout")


def test_refusals(dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(DatasetError, match="not empty"):
        build_ict_dataset(None, root, OPTIONS, model=object())
    with pytest.raises(DatasetError, match="min_vertices"):
        build_ict_dataset(None, tmp_path / "x", BuildOptions(min_vertices=50))
    with pytest.raises(DatasetError, match="no manifest.json"):
        HeadDataset(tmp_path)
    bad = tmp_path / "bad.npz"
    np.savez(bad, vertices=np.zeros((3, 3)))
    with pytest.raises(DatasetError, match="sample lacks face_vertex_counts"):
        load_sample(bad)
