"""The MakeHuman builder on the real assets: crop, parts, FACS map, lids, jaw, splits, merging with ICT."""

from __future__ import annotations

import gzip
import json
import tarfile

import numpy as np
import pytest

from facerig.errors import ConfigError, DatasetError
from facerig.trainer.config import config_from_dict
from facerig.eval.datasets import load_sample, read_manifest, sample_triangles
from facerig.trainer.dataset import EYELID_PAIRS, BuildOptions, build_ict_dataset, head_geometry, merge_datasets, plan_samples
from facerig.trainer.heads import TrainingHeads, identity_subset, weighted_indices
from facerig.trainer.makehuman import (
    EXPRESSION_SETS,
    HEAD_MIN_Y,
    HELPER_PARTS,
    MODIFIER_GROUPS,
    MakeHumanSource,
    build_makehuman_dataset,
    load_facs_map,
    load_makehuman,
)
from facerig.trainer.source import PART_NAMES
from facerig.vocabulary import load_vocabulary

OPTIONS = BuildOptions(rigged=5, unrigged=1, factor_rigged=2, factor_unrigged=1, min_vertices=1200, max_vertices=2000,
                       seed=3)
LEFT_PAIRS = [(u, l) for (u, l), side in zip(EYELID_PAIRS.tolist(), ("r", "r", "l", "l")) if side == "l"]
RIGHT_PAIRS = [(u, l) for (u, l), side in zip(EYELID_PAIRS.tolist(), ("r", "r", "l", "l")) if side == "r"]


@pytest.fixture(scope="module")
def model(makehuman_archive):
    return load_makehuman(makehuman_archive)


@pytest.fixture(scope="module")
def source(model):
    return MakeHumanSource(model)


@pytest.fixture(scope="module")
def dataset(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("mh") / "data"
    return root, build_makehuman_dataset(None, root, OPTIONS, model=model)


def _base_groups(archive_path) -> dict[str, set[int]]:
    """base.obj vertex indices per OBJ group, read straight from the archive."""
    with tarfile.open(archive_path) as archive:
        member = next(m for m in archive if m.name.endswith("3dobjs/base.obj"))
        text = archive.extractfile(member).read().decode()
    groups: dict[str, set[int]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("g "):
            current = line[2:].strip()
        elif line.startswith("f "):
            groups.setdefault(current, set()).update(int(t.split("/")[0]) - 1 for t in line.split()[1:])
    return groups


def _unit_names(model) -> dict[str, set[str]]:
    return {s: {n.rsplit("/", 1)[1] for n in model.targets if n.startswith(f"expression/units/{s}/")}
            for s in EXPRESSION_SETS}  # fmt: skip


# ---------------------------------------------------------------------------------------------- mapping
def test_facs_map_names_vocabulary_poses_and_real_units(model):
    facs = load_facs_map()
    actions = load_vocabulary().action_names
    assert set(facs.actions) | set(facs.unlabelled) == set(actions)
    assert not set(facs.actions) & set(facs.unlabelled)
    units = _unit_names(model)
    assert units["african"] == units["asian"] and len(units["african"]) == 34
    mapped_units = {unit for recipe in facs.actions.values() for unit, _ in recipe}
    assert mapped_units <= units["african"]
    assert mapped_units | set(facs.unmapped) == units["african"]  # every unit is either used or said why not
    assert all(len(why) > 10 for why in [*facs.unmapped.values(), *facs.unlabelled.values()])
    assert {"JawDrop", "LeftEyeClosed", "RightEyeClosed", "Pucker"} <= set(facs.actions)
    assert not any(name.startswith("EyesLook") for name in facs.actions)  # MakeHuman has no eye-look units


def test_unlabelled_poses_are_marked_not_zero_truth(source):
    names = load_vocabulary().shape_names
    labelled = dict(zip(names, source.labelled.tolist()))
    assert labelled["JawDrop"] and labelled["LeftEyeClosed"] and labelled["LeftLipCornerPuller"]
    assert not labelled["Corrugator"] and not labelled["EyesLookLeft"] and not labelled["LeftCheekPuff"]
    assert sum(source.labelled[:47]) == len(load_facs_map().actions) == 23


# ---------------------------------------------------------------------------------------------- crop and parts
def test_crop_keeps_head_parts_and_drops_helpers(model, source, makehuman_archive):
    groups = _base_groups(makehuman_archive)
    kept = set(model.base_index.tolist())
    for name, vertices in groups.items():
        if name.startswith("joint-") or name in ("helper-hair", "helper-tights", "helper-skirt", "helper-genital"):
            assert not vertices & kept, f"{name} survived the crop"
        elif name in HELPER_PARTS:
            assert vertices <= kept, f"{name} was cut"
    body = np.isin(model.base_index, sorted(groups["body"]))
    assert (model.neutral[body, 1] > HEAD_MIN_Y * 10).all()  # head and upper neck only (cm)
    size = np.ptp(model.neutral, axis=0)
    assert 12 < size[0] < 25 and 20 < size[1] < 35  # a head, not a body
    present = {PART_NAMES[p] for p in np.unique(source.parts)}
    assert {"face", "face_outer", "head_neck", "eyeball_left", "eyeball_right", "teeth", "gums_tongue",
            "eyelashes_left", "eyelashes_right"} == present  # fmt: skip
    subdivided = source.subdivision @ model.neutral  # every budget decimates the source, as for ICT's 26k
    assert len(subdivided) > 3.5 * model.n_vertices and np.array_equal(subdivided[: model.n_vertices], model.neutral)
    left_eye = subdivided[source.parts == PART_NAMES.index("eyeball_left")]
    assert left_eye[:, 0].min() > 0  # MakeHuman's left is the character's left, +X


def test_landmarks_sit_on_the_right_features(model, source):
    v = model.neutral[source.landmarks]
    midline = v[[27, 30, 33, 51, 57, 8], 0].mean()
    assert abs(midline) < 0.2
    assert (v[36:42, 0] < midline).all() and (v[42:48, 0] > midline).all()  # right eye at -X, left at +X
    assert v[48, 0] < midline < v[54, 0] and v[8, 1] < v[57, 1] < v[51, 1] < v[30, 1] < v[27, 1]
    for upper, lower in EYELID_PAIRS.tolist():
        assert 0.5 < v[upper, 1] - v[lower, 1] < 1.5  # open lids, upper above lower (cm)


# ---------------------------------------------------------------------------------------------- poses
def _gap(points: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    """Summed upper-to-lower lid distance as a frontal camera sees it (x, y): what the eye-closure loss measures."""
    return float(sum(np.linalg.norm(points[u, :2] - points[l, :2]) for u, l in pairs))


@pytest.mark.parametrize("identity", [0, 1, 2])
def test_eye_closure_closes_the_lid_landmarks_on_its_side(source, identity):
    """On the built head (source topology, before re-meshing), each EyeClosed closes its own lids by > 80% and
    moves only its own side."""
    spec = next(s for s in plan_samples(OPTIONS, "mh_")[0] if s.identity == identity and s.alpha == 0)
    head = head_geometry(source, OPTIONS, spec)
    deltas = source.action_deltas(head, spec, OPTIONS)
    actions = load_vocabulary().action_names
    midline = head[source.landmarks[[27, 30, 33, 51, 57, 8]], 0].mean()
    for pose, own, other, sign in (("LeftEyeClosed", LEFT_PAIRS, RIGHT_PAIRS, 1), ("RightEyeClosed", RIGHT_PAIRS, LEFT_PAIRS, -1)):
        d = deltas[actions.index(pose)]
        before, after = head[source.landmarks], (head + d)[source.landmarks]
        assert _gap(after, own) < 0.2 * _gap(before, own), pose
        assert _gap(after, other) == pytest.approx(_gap(before, other))
        moved = np.linalg.norm(d, axis=1)
        on_side = sign * (head[:, 0] - midline) > 0
        assert moved[on_side].sum() > 0.99 * moved.sum(), pose


def test_built_samples_close_lids_open_jaw_and_keep_parts(dataset):
    root, manifest = dataset
    shapes = manifest["shapes"]
    plain = [e for e in manifest["samples"] if not e["augment"]]
    assert len(plain) >= 3
    for entry in plain:
        arrays = load_sample(root / entry["file"])
        x = arrays["vertices"].astype(np.float64)  # un-augmented: the source frame in cm
        assert np.allclose(arrays["transform"], np.eye(4)) and float(arrays["meters_per_unit"]) == 0.01
        tris = sample_triangles(arrays)

        def landmarks(d: np.ndarray) -> np.ndarray:
            corners = (x + d)[tris[arrays["landmark_triangles"]]]
            return np.einsum("lk,lkd->ld", arrays["landmark_barycentrics"], corners)

        for pose, pairs in (("LeftEyeClosed", LEFT_PAIRS), ("RightEyeClosed", RIGHT_PAIRS)):
            d = arrays["deltas"][shapes.index(pose)].astype(np.float64)
            vertical = lambda p: sum(abs(p[u, 1] - p[l, 1]) for u, l in pairs)  # noqa: E731
            # Re-meshing coarsens the lid margin (ICT's own samples close 45-90% the same way).
            assert vertical(landmarks(d)) < 0.6 * vertical(landmarks(0 * d)), (entry["name"], pose)
        jaw = arrays["deltas"][shapes.index("JawDrop")].astype(np.float64)
        rest, opened = landmarks(0 * jaw), landmarks(jaw)
        assert opened[57, 1] - rest[57, 1] < -2.0  # the lower lip drops 2+ cm
        assert abs(opened[51, 1] - rest[51, 1]) < 0.5  # the upper lip stays
        assert (opened[51, 1] - opened[57, 1]) > (rest[51, 1] - rest[57, 1]) + 2.0  # the mouth opens downward
        parts = {manifest["parts"][p] for p in np.unique(arrays["parts"])}
        assert {"teeth", "eyeball_left", "eyeball_right", "gums_tongue"} <= parts
        unlabelled = [shapes.index(n) for n in ("Corrugator", "EyesLookUp", "LeftCheekPuff")]
        assert not arrays["labelled"][unlabelled].any()


# ---------------------------------------------------------------------------------------------- dataset
def test_evaluation_measures_blink_closure_on_makehuman_heads(dataset):
    """MakeHuman's own blinks cover most of each eyeball (facerig.anatomy.contact), doing nothing none of it."""
    from facerig.eval.evaluate import evaluate

    root, _ = dataset
    report = evaluate(None, root, "train", methods=["neutral"], max_heads=2)
    assert report.truth_blink_closure > 0.7
    assert report.methods["neutral"].blink_closure == pytest.approx(0.0)


def test_manifest_splits_by_identity_and_records_the_source(dataset):
    root, manifest = dataset
    assert read_manifest(root)["sources"] == ["makehuman"]
    split = manifest["identities"]["rigged"]
    assert not set(split["train"]) & set(split["val"]) and not set(split["train"]) & set(split["test"])
    assert not set(split["val"]) & set(split["test"])
    for entry in manifest["samples"]:
        assert entry["source"] == "makehuman" and entry["name"].startswith(f"mh_{entry['kind']}_")
        own = manifest["identities"][entry["kind"]][entry["split"]]
        assert entry["identity"] in own and entry["partner"] in own
        assert (root / entry["file"]).is_file()
    assert manifest["counts"]["rigged_train"] == 2 * len(split["train"])
    stylised = next(e for e in manifest["samples"] if e["kind"] == "unrigged")  # stage-1 heads: no 3D truth
    arrays = load_sample(root / stylised["file"])
    assert "deltas" not in arrays and not arrays["labelled"].any() and len(arrays["landmarks"]) == 68


def test_same_seed_same_heads(dataset, model, tmp_path):
    root, manifest = dataset
    again = build_makehuman_dataset(None, tmp_path / "again", OPTIONS, model=model)
    first = manifest["samples"][0]
    a, b = load_sample(root / first["file"]), load_sample(tmp_path / "again" / first["file"])
    assert [e["name"] for e in again["samples"]] == [e["name"] for e in manifest["samples"]]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_merged_with_ict_trains_with_source_weights(dataset, ict_dir, tmp_path):
    root, manifest = dataset
    ict = tmp_path / "ict"
    ict_manifest = build_ict_dataset(ict_dir, ict, BuildOptions(rigged=3, unrigged=0, factor_rigged=1,
                                                                 min_vertices=800, max_vertices=1000))  # fmt: skip
    assert {e["source"] for e in ict_manifest["samples"]} == {"ict"}
    merged = merge_datasets([ict, root], tmp_path / "both")
    assert merged["sources"] == ["ict", "makehuman"]
    assert merged["counts"]["total"] == ict_manifest["counts"]["total"] + manifest["counts"]["total"]
    both = np.array(ict_manifest["labelled"]) & np.array(manifest["labelled"])  # evaluation scores only these
    assert merged["labelled"] == both.tolist() and 0 < both.sum() < np.sum(ict_manifest["labelled"])
    heads = TrainingHeads(tmp_path / "both", "train")
    sources = heads.sources()
    assert sources.count("ict") == ict_manifest["counts"]["rigged_train"]
    mh_head = heads[sources.index("makehuman")]
    assert mh_head.rigged and mh_head.labelled[load_vocabulary().shape_names.index("JawDrop")]
    indices = list(range(len(heads)))
    doubled = weighted_indices(indices, sources, {"makehuman": 2.0}, [0])
    assert len(doubled) == sources.count("ict") + 2 * sources.count("makehuman")
    halved = weighted_indices(indices, sources, {"makehuman": 0.5}, [0])
    assert len(halved) == sources.count("ict") + round(0.5 * sources.count("makehuman"))
    with pytest.raises(DatasetError, match="is in two inputs"):
        merge_datasets([root, root], tmp_path / "twice")


def test_identity_subset_keeps_whole_identities():
    sources = ["ict"] * 3 + ["makehuman"] * 6
    # makehuman samples: identities 0, 1, 2 alone, then blends 0+1, 1+2, 2+0
    identities = [(0, 0), (1, 1), (2, 2), (0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (2, 0)]
    indices = list(range(9))
    one = identity_subset(indices, sources, identities, {"makehuman": 1}, [0])
    assert one[:3] == [0, 1, 2] and len(one) == 4  # ICT untouched; one MakeHuman head, no blend
    two = identity_subset(indices, sources, identities, {"makehuman": 2}, [0])
    assert len(two) == 3 + 3 and set(one) < set(two)  # two identities and their one blend; nested choices
    assert identity_subset(indices, sources, identities, {"makehuman": 9}, [0]) == indices
    with pytest.raises(ConfigError, match="identities"):
        config_from_dict({"data": {"identities": {"makehuman": 1.5}}})


def test_source_weights_config():
    config = config_from_dict({"data": {"source_weights": {"makehuman": 2}}})
    assert dict(config.data.source_weights) == {"makehuman": 2.0}
    with pytest.raises(ConfigError, match="source_weights"):
        config_from_dict({"data": {"source_weights": {"ict": -1}}})


# ---------------------------------------------------------------------------------------------- refusals
def test_refusals(tmp_path):
    with pytest.raises(DatasetError, match="MakeHuman source not found"):
        load_makehuman(tmp_path / "missing")
    folder = tmp_path / "MakeHuman-assets"
    (folder / "targets").mkdir(parents=True)
    (folder / "targets" / "target.json").write_text(json.dumps({g: {"categories": []} for g in MODIFIER_GROUPS}))
    with pytest.raises(DatasetError, match="lacks 3dobjs/base.obj"):
        load_makehuman(folder)
    (folder / "3dobjs").mkdir()
    lines = []
    for i, group in enumerate(["body", *HELPER_PARTS]):  # one quad per group, above the neck cut
        lines += [f"v {x} {7 + y} {i}" for x, y in ((0, 0), (1, 0), (1, 1), (0, 1))]
        lines += [f"g {group}", f"f {4 * i + 1} {4 * i + 2} {4 * i + 3} {4 * i + 4}"]
    (folder / "3dobjs" / "base.obj").write_text("\n".join(lines) + "\n")
    (folder / "targets" / "bad.target.gz").write_bytes(gzip.compress(b"0 0.1 0.2\n"))
    with pytest.raises(DatasetError, match="bad: malformed offset lines"):
        load_makehuman(folder)
    (folder / "targets" / "bad.target.gz").write_bytes(gzip.compress(b"99 0.1 0.2 0.3\n"))
    with pytest.raises(DatasetError, match="bad: vertex index out of range"):
        load_makehuman(folder)
    (folder / "targets" / "bad.target.gz").write_bytes(gzip.compress(b"1 0.1 0.2 0.3\n"))
    with pytest.raises(DatasetError, match="lacks targets/expression/units/african/"):
        load_makehuman(folder)
    not_an_archive = tmp_path / "x.tar.xz"
    not_an_archive.write_bytes(b"nope")
    with pytest.raises(DatasetError, match="not a readable tar archive"):
        load_makehuman(not_an_archive)
