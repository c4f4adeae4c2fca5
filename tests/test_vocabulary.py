"""The pose vocabulary: Table 1, the default correctives, ARKit and ICT-FaceKit aliases, user files.

The ICT mapping is checked against the real FaceXModel shapes: sides (ICT ``_L`` is the character's left,
+X in those Y-up, +Z-facing files) and directions (EyesLookLeft turns the eyes toward +X, ...).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from facerig.errors import VocabularyError
from facerig.vocabulary import SIDE_BLEND_HALF_WIDTH, Vocabulary, load_vocabulary, mirror_permutation, side_weights

# The seed's Table 1 (RigAnyFace appendix D), transcribed: number, short, full.
TABLE_1 = """
1 neutral neutral 2 c_COR Corrugator 3 c_CR ChinRaiser 4 c_CRUL ChinRaiserUpperLip 5 c_ELD EyesLookDown
6 c_ELL EyesLookLeft 7 c_ELR EyesLookRight 8 c_ELU EyesLookUp 9 c_FN Funneler 10 c_FP FlatPucker
11 c_JD JawDrop 12 c_JL JawLeft 13 c_JR JawRight 14 c_LLS LowerLipSuck 15 c_LP LipPresser
16 c_LPT LipsTogether 17 c_ML MouthLeft 18 c_MR MouthRight 19 c_PK Pucker 20 c_ULS UpperLipSuck
21 l_BL LeftBrowLowerer 22 l_CHP LeftCheekPuff 23 l_CHR LeftCheekRaiser 24 l_DM LeftDimpler
25 l_EC LeftEyeClosed 26 l_EULR LeftEyeUpperLidRaiser 27 l_IBR LeftInnerBrowRaiser 28 l_LCD LeftLipCornerDown
29 l_LCP LeftLipCornerPuller 30 l_LLD LeftLowerLipDepressor 31 l_LS LeftLipStretcher 32 l_NW LeftNoseWrinkler
33 l_OBR LeftOuterBrowRaiser 34 l_ULR LeftUpperLipRaiser 35 r_BL RightBrowLowerer 36 r_CHP RightCheekPuff
37 r_CHR RightCheekRaiser 38 r_DM RightDimpler 39 r_EC RightEyeClosed 40 r_EULR RightEyeUpperLidRaiser
41 r_IBR RightInnerBrowRaiser 42 r_LCD RightLipCornerDown 43 r_LCP RightLipCornerPuller
44 r_LLD RightLowerLipDepressor 45 r_LS RightLipStretcher 46 r_NW RightNoseWrinkler 47 r_OBR RightOuterBrowRaiser
48 r_ULR RightUpperLipRaiser
"""

# Apple's ARFaceAnchor.BlendShapeLocation names.
ARKIT_52 = """
eyeBlinkLeft eyeLookDownLeft eyeLookInLeft eyeLookOutLeft eyeLookUpLeft eyeSquintLeft eyeWideLeft
eyeBlinkRight eyeLookDownRight eyeLookInRight eyeLookOutRight eyeLookUpRight eyeSquintRight eyeWideRight
jawForward jawLeft jawRight jawOpen mouthClose mouthFunnel mouthPucker mouthLeft mouthRight
mouthSmileLeft mouthSmileRight mouthFrownLeft mouthFrownRight mouthDimpleLeft mouthDimpleRight
mouthStretchLeft mouthStretchRight mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper
mouthPressLeft mouthPressRight mouthLowerDownLeft mouthLowerDownRight mouthUpperUpLeft mouthUpperUpRight
browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight cheekPuff cheekSquintLeft
cheekSquintRight noseSneerLeft noseSneerRight tongueOut
""".split()
ARKIT_DIRECTIONS = {"jawLeft", "jawRight", "mouthLeft", "mouthRight"}  # Left/Right here is a motion, not a side


def mirrored(name: str) -> str:
    """A pose's left-right mirror image."""
    for a, b in (("Left", "Right"), ("Right", "Left")):
        if name.startswith(a):
            return b + name[len(a) :]
        if name.endswith(a):
            return name[: -len(a)] + b
    return name


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return load_vocabulary()


# ---------------------------------------------------------------------------------------------- poses
def test_poses_are_table_1_in_order(vocabulary: Vocabulary) -> None:
    tokens = TABLE_1.split()
    table = sorted((int(tokens[i]), tokens[i + 1], tokens[i + 2]) for i in range(0, len(tokens), 3))
    assert [(p.index + 1, p.short, p.full) for p in vocabulary.poses] == table
    assert len(vocabulary.poses) == 48 and vocabulary.poses[0].full == "neutral"
    for pose in vocabulary.poses[1:]:
        assert pose.side == pose.short[0]
        assert pose.full.startswith({"l": "Left", "r": "Right", "c": ""}[pose.side])
    assert len(vocabulary.actions) == 47 and "neutral" not in vocabulary.action_names


def test_shape_names_are_actions_then_correctives(vocabulary: Vocabulary) -> None:
    names = vocabulary.shape_names
    assert len(names) == 95 and len(set(names)) == 95
    assert names[:47] == vocabulary.action_names
    assert names[47:] == tuple(c.name for c in vocabulary.correctives)
    for name in names:
        assert name.isidentifier() and name.isascii() and len(name.encode()) <= 63


# ---------------------------------------------------------------------------------------------- correctives
def test_default_correctives_follow_the_rules(vocabulary: Vocabulary) -> None:
    correctives = vocabulary.correctives
    by_full = {p.full: p for p in vocabulary.poses}
    assert len(correctives) == 48 and len({c.name for c in correctives}) == 48
    for corrective in correctives:
        assert 2 <= len(corrective.bases) <= 3
        assert all(base in by_full and base != "neutral" for base in corrective.bases)
        assert len(set(corrective.bases)) == len(corrective.bases)
        assert not {"l", "r"} <= {by_full[base].side for base in corrective.bases}
        assert corrective.name == "_".join(sorted(corrective.bases))
        assert not any(base.startswith("Tongue") for base in corrective.bases)
    names = {c.name for c in correctives}
    for corrective in correctives:
        for pair in itertools.combinations(corrective.bases, 2):
            assert "_".join(sorted(pair)) in names, f"{corrective.name} lacks its pair {pair}"


def test_default_correctives_are_left_right_symmetric(vocabulary: Vocabulary) -> None:
    sets = {frozenset(c.bases) for c in vocabulary.correctives}
    for bases in sets:
        assert frozenset(mirrored(b) for b in bases) in sets, f"{sorted(bases)} has no mirror image"


def test_correctives_replacing_the_tongue_ones_are_present(vocabulary: Vocabulary) -> None:
    names = {c.name for c in vocabulary.correctives}
    # The research proposal minus its three tongue correctives, plus the replacements chosen from its alternates.
    assert {"LipsTogether_Pucker", "EyesLookLeft_LeftEyeClosed", "EyesLookRight_RightEyeClosed"} <= names
    assert {"JawDrop_LeftLipCornerPuller", "EyesLookDown_LeftEyeClosed", "Funneler_JawDrop_Pucker"} <= names


# ---------------------------------------------------------------------------------------------- activations
def test_activations_rows(vocabulary: Vocabulary) -> None:
    matrix, rows = vocabulary.activations()
    assert matrix.shape == (96, 47) and matrix.dtype == np.float32
    assert rows == ("neutral",) + vocabulary.shape_names
    assert not matrix[0].any()
    np.testing.assert_array_equal(matrix[1:48], np.eye(47, dtype=np.float32))
    for row, corrective in zip(matrix[48:], vocabulary.correctives):
        expected = np.zeros(47, np.float32)
        expected[[vocabulary.action_index(b) for b in corrective.bases]] = 1.0
        np.testing.assert_array_equal(row, expected)
    jaw_smile = rows.index("JawDrop_LeftLipCornerPuller")
    assert set(np.flatnonzero(matrix[jaw_smile])) == {
        vocabulary.action_index("JawDrop"),
        vocabulary.action_index("LeftLipCornerPuller"),
    }


# ---------------------------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("JawDrop", "JawDrop"),
        ("c_JD", "JawDrop"),
        ("jawOpen", "JawDrop"),
        ("eyeBlinkLeft", "LeftEyeClosed"),
        ("eyeBlink_L", "LeftEyeClosed"),
        ("mouthSmile_R", "RightLipCornerPuller"),
        ("cheekSquintLeft", "LeftCheekRaiser"),
        ("cheekRaiser_L", "LeftCheekRaiser"),  # ICT-only name
        ("mouthClose", "LipsTogether"),
        ("neutral", "neutral"),
        ("JawDrop_LeftLipCornerPuller", "JawDrop_LeftLipCornerPuller"),
        ("LeftLipCornerPuller_JawDrop", "JawDrop_LeftLipCornerPuller"),  # RBX_Toolbox order
        ("Pucker_JawDrop_Funneler", "Funneler_JawDrop_Pucker"),
    ],
)
def test_resolve_accepts_every_one_to_one_spelling(vocabulary: Vocabulary, name: str, expected: str) -> None:
    assert vocabulary.resolve(name) == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("jawopen", "unknown pose name 'jawopen'; did you mean 'jawOpen'"),
        ("browInnerUp", "LeftInnerBrowRaiser \\+ 1\\*RightInnerBrowRaiser"),
        ("eyeLookInLeft", "EyesLookRight, left half only"),
        ("tongueOut", "no FACS pose"),
        ("eyeLookOut_L", "not a single FACS pose"),
        ("mouthPress_L", "not a single FACS pose"),
        ("jawForward", "no FACS pose"),
        ("PupilDilate_L", "no FACS pose"),
        ("JawDrop_LeftCheekPuff", "unknown pose name"),  # bases exist, but it is not a corrective here
    ],
)
def test_resolve_explains_names_it_cannot_take(vocabulary: Vocabulary, name: str, reason: str) -> None:
    with pytest.raises(VocabularyError, match=reason):
        vocabulary.resolve(name)


def test_action_index(vocabulary: Vocabulary) -> None:
    assert vocabulary.action_index("Corrugator") == 0
    assert vocabulary.action_index("r_ULR") == 46
    assert vocabulary.action_index("jawOpen") == vocabulary.action_names.index("JawDrop")
    for bad in ("neutral", "JawDrop_LeftLipCornerPuller"):
        with pytest.raises(VocabularyError, match="not an action pose"):
            vocabulary.action_index(bad)


# ---------------------------------------------------------------------------------------------- ARKit
def test_arkit_covers_the_52_names_with_raw_aliases(vocabulary: Vocabulary) -> None:
    recipes = vocabulary.arkit_recipes()
    assert list(recipes) == ARKIT_52
    for name, recipe in recipes.items():
        if name.endswith(("Left", "Right")) and name not in ARKIT_DIRECTIONS:
            stem, side = (name[:-4], "L") if name.endswith("Left") else (name[:-5], "R")
            assert recipe.aliases == (f"{stem}_{side}",)
        else:
            assert recipe.aliases == ()
    no_source = {n for n, r in recipes.items() if not r.terms}
    assert no_source == {"tongueOut", "jawForward", "eyeSquintLeft", "eyeSquintRight"}


def test_arkit_sides_match_the_faces_own_sides(vocabulary: Vocabulary) -> None:
    sides = {p.full: p.side for p in vocabulary.poses}
    for name, recipe in vocabulary.arkit_recipes().items():
        if name in ARKIT_DIRECTIONS or not name.endswith(("Left", "Right")):
            assert recipe.side is None
            continue
        side = "l" if name.endswith("Left") else "r"
        for pose, _ in recipe.terms:
            assert recipe.side == side or sides[pose] == side, name


def test_arkit_per_eye_gaze_uses_the_matching_both_eyes_pose(vocabulary: Vocabulary) -> None:
    recipes = vocabulary.arkit_recipes()
    # Looking in (toward the nose) with the left eye is looking toward the character's right.
    assert recipes["eyeLookInLeft"].terms == (("EyesLookRight", 1.0),) and recipes["eyeLookInLeft"].side == "l"
    assert recipes["eyeLookInRight"].terms == (("EyesLookLeft", 1.0),) and recipes["eyeLookInRight"].side == "r"
    assert recipes["eyeLookOutLeft"].terms == (("EyesLookLeft", 1.0),)
    assert recipes["browInnerUp"].terms == (("LeftInnerBrowRaiser", 1.0), ("RightInnerBrowRaiser", 1.0))


def test_side_weights_split_a_shape_into_halves_that_sum_to_it(vocabulary: Vocabulary) -> None:
    x = np.linspace(-1.0, 1.0, 201)
    left, right = side_weights(x, "l"), side_weights(x, "r")
    np.testing.assert_array_equal(left + right, np.ones_like(x))
    assert left[x >= SIDE_BLEND_HALF_WIDTH].min() == 1.0 and left[x <= -SIDE_BLEND_HALF_WIDTH].max() == 0.0
    assert np.all(np.diff(left) >= 0) and left[100] == pytest.approx(0.5)

    rng = np.random.default_rng(1)
    deltas = {name: rng.normal(size=(201, 3)).astype(np.float32) for name in vocabulary.action_names}
    recipes = vocabulary.arkit_recipes()
    halves = recipes["mouthPressLeft"].build(deltas, x) + recipes["mouthPressRight"].build(deltas, x)
    np.testing.assert_allclose(halves, deltas["LipPresser"], atol=1e-6)
    both = recipes["cheekPuff"].build(deltas)
    np.testing.assert_allclose(both, deltas["LeftCheekPuff"] + deltas["RightCheekPuff"], atol=1e-6)
    assert not recipes["tongueOut"].build(deltas).any()
    with pytest.raises(VocabularyError, match="needs canonical x"):
        recipes["eyeLookUpLeft"].build(deltas)


# ---------------------------------------------------------------------------------------------- ICT-FaceKit
def read_positions(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8") as handle:
        rows = [line[2:] for line in handle if line.startswith("v ")]
    return np.loadtxt(rows, dtype=np.float64)


@pytest.fixture(scope="module")
def ict_deltas(ict_dir: Path, vocabulary: Vocabulary) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """ICT neutral (V, 3) and every FACS pose's ICT delta (sum of its ICT shapes' deltas)."""
    neutral = read_positions(ict_dir / "generic_neutral_mesh.obj")
    cache: dict[str, np.ndarray] = {}
    poses = {}
    for pose, shapes in vocabulary.ict_recipes().items():
        if shapes is None:
            continue
        for shape in shapes:
            if shape not in cache:
                cache[shape] = read_positions(ict_dir / f"{shape}.obj") - neutral
        poses[pose] = sum(cache[shape] for shape in shapes)
    return neutral, poses


def test_ict_map_covers_every_action(vocabulary: Vocabulary, ict_dir: Path) -> None:
    recipes = vocabulary.ict_recipes()
    assert list(recipes) == list(vocabulary.action_names)
    assert {p for p, shapes in recipes.items() if shapes is None} == {"Corrugator", "FlatPucker"}
    assert recipes["EyesLookLeft"] == ("eyeLookOut_L", "eyeLookIn_R")
    assert recipes["LipPresser"] == ("mouthPress_L", "mouthPress_R")
    assert recipes["LipsTogether"] == ("mouthClose",)
    expressions = json.loads((ict_dir / "vertex_indices.json").read_text())["expressions"]
    on_disk = {p.stem for p in ict_dir.glob("*.obj")} - {"generic_neutral_mesh"}
    on_disk = {name for name in on_disk if not name.startswith("identity")}
    assert set(expressions) <= set(vocabulary.ict.shapes) and set(vocabulary.ict.shapes) == on_disk
    used = {s for shapes in recipes.values() if shapes for s in shapes}
    assert used | {name for name, _ in vocabulary.ict.unused} == on_disk


def test_ict_left_is_the_characters_left(ict_dir: Path) -> None:
    neutral = read_positions(ict_dir / "generic_neutral_mesh.obj")
    for shape, sign in (("eyeBlink_L", 1.0), ("eyeBlink_R", -1.0)):
        magnitude = np.linalg.norm(read_positions(ict_dir / f"{shape}.obj") - neutral, axis=1)
        # ICT shapes leak a little (up to ~1 % of the peak) across the face; what really moves is on one side.
        moved = magnitude > 0.05 * magnitude.max()
        assert moved.sum() > 100
        assert np.all(np.sign(neutral[moved, 0]) == sign), shape
        assert magnitude[np.sign(neutral[:, 0]) == sign].sum() > 0.98 * magnitude.sum()


def test_ict_sided_poses_move_their_own_side(vocabulary: Vocabulary, ict_deltas) -> None:
    neutral, deltas = ict_deltas
    sides = {p.full: p.side for p in vocabulary.poses}
    for pose, delta in deltas.items():
        magnitude = np.linalg.norm(delta, axis=1)
        left_share = magnitude[neutral[:, 0] > 0].sum() / magnitude.sum()
        if sides[pose] == "l":
            assert left_share > 0.75, pose
        elif sides[pose] == "r":
            assert left_share < 0.25, pose
        else:
            assert 0.4 < left_share < 0.6, pose


@pytest.mark.parametrize(
    ("pose", "axis", "sign"),
    [("EyesLookLeft", 0, 1), ("EyesLookRight", 0, -1), ("EyesLookUp", 1, 1), ("EyesLookDown", 1, -1),
     ("JawLeft", 0, 1), ("JawRight", 0, -1), ("MouthLeft", 0, 1), ("MouthRight", 0, -1), ("JawDrop", 1, -1)],
)
def test_ict_directional_poses_move_the_right_way(ict_deltas, pose: str, axis: int, sign: int) -> None:
    # Y-up, face toward +Z, character's left toward +X: the mean motion is dominated by the named direction.
    _, deltas = ict_deltas
    moved = deltas[pose][np.linalg.norm(deltas[pose], axis=1) > 1e-3]
    mean = moved.mean(axis=0)
    assert np.sign(mean[axis]) == sign
    others = [a for a in range(3) if a != axis and not (pose == "JawDrop" and a == 2)]  # the jaw swings back too
    assert all(abs(mean[axis]) > abs(mean[a]) for a in others), (pose, mean)


# ---------------------------------------------------------------------------------------------- files
def test_to_dict_round_trips_and_id_tracks_content(vocabulary: Vocabulary, tmp_path: Path) -> None:
    data = json.loads(json.dumps(vocabulary.to_dict()))
    again = Vocabulary.from_dict(data)
    assert again == vocabulary and again.id == vocabulary.id and len(vocabulary.id) == 12
    path = tmp_path / "poses.json"
    path.write_text(json.dumps(data))
    assert load_vocabulary(path) == vocabulary
    data["correctives"] = data["correctives"][:-1]
    assert Vocabulary.from_dict(data).id != vocabulary.id
    with pytest.raises(VocabularyError, match="lacks sections"):
        Vocabulary.from_dict({"poses": data["poses"]})


def test_user_file_replaces_only_its_sections(tmp_path: Path, vocabulary: Vocabulary) -> None:
    path = tmp_path / "studio.json"
    correctives = [{"bases": ["JawDrop", "Pucker"]}, {"bases": ["EyesLookUp", "EyesLookLeft"]}]
    path.write_text(json.dumps({"correctives": correctives}))
    custom = load_vocabulary(path)
    assert [c.name for c in custom.correctives] == ["JawDrop_Pucker", "EyesLookLeft_EyesLookUp"]
    assert custom.poses == vocabulary.poses and custom.arkit == vocabulary.arkit
    assert custom.shape_names == vocabulary.action_names + ("JawDrop_Pucker", "EyesLookLeft_EyesLookUp")
    assert custom.activations()[0].shape == (50, 47)


def _pose_entries(vocabulary: Vocabulary) -> list[dict]:
    return vocabulary.to_dict()["poses"]


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        (
            {"correctives": [{"bases": ["JawDrop", "JawDrops"]}]},
            r"unknown base pose 'JawDrops' \(did you mean 'JawDrop'\?\)",
        ),
        (
            {"correctives": [{"bases": ["JawDrop", "Pucker"]}, {"bases": ["Pucker", "JawDrop"]}]},
            "duplicate corrective 'JawDrop_Pucker'",
        ),
        ({"correctives": [{"bases": ["JawDrop", "JawDrop"]}]}, "appears twice"),
        ({"correctives": [{"bases": ["JawDrop", "Pucker", "Funneler", "LipsTogether"]}]}, "2 to 3 base poses, got 4"),
        ({"correctives": [{"bases": ["JawDrop"]}]}, "2 to 3 base poses, got 1"),
        ({"correctives": [{"bases": ["LeftCheekPuff", "RightEyeClosed"]}]}, "cannot mix Left and Right"),
        ({"correctives": [{"bases": ["JawDrop", "neutral"]}]}, "neutral cannot be part"),
        ({"correctives": [{"name": "Pucker_JawDrop", "bases": ["JawDrop", "Pucker"]}]}, "name it 'JawDrop_Pucker'"),
        ({"correctives": [{"bases": ["JawDrop", "Pucker"], "weight": 2}]}, "unknown keys \\['weight'\\]"),
        ({"arkit": [{"name": "jawOpen", "poses": [["JawOpen", 1.0]]}]}, "'JawOpen', which is not an action pose"),
        ({"ict": {"shapes": ["jawOpen"], "poses": {"JawDrop": []}}}, "null for unlabelled"),
        ({"bogus": []}, "unknown keys \\['bogus'\\]"),
        ({"version": 2, "correctives": []}, "schema version 2"),
        ({"arkit": [{"name": "JawDrop", "poses": [["Pucker", 1.0]]}]}, "ARKit name 'JawDrop' means 'Pucker'"),
        ({"arkit": [{"name": "a", "poses": [], "aliases": ["a"]}]}, r"appear twice: \['a'\]"),
    ],
)
def test_user_file_errors_name_the_file_and_the_problem(tmp_path: Path, section: dict, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(section))
    with pytest.raises(VocabularyError, match=reason) as caught:
        load_vocabulary(path)
    assert caught.value.path == path and str(path) in str(caught.value)


def test_pose_names_must_be_short_usd_identifiers(tmp_path: Path, vocabulary: Vocabulary) -> None:
    path = tmp_path / "poses.json"
    for bad, reason in (("Jaw Drop", "not a valid USD identifier"), ("Left" + "X" * 60, "64 bytes")):
        poses = _pose_entries(vocabulary)
        poses[21]["full"] = bad  # l_BL
        empty = {"correctives": [], "arkit": [], "ict": {"shapes": [], "poses": {}}}
        path.write_text(json.dumps({"poses": poses, **empty}))
        with pytest.raises(VocabularyError, match=reason):
            load_vocabulary(path)


def test_replacing_poses_checks_the_default_sections_against_them(tmp_path: Path, vocabulary: Vocabulary) -> None:
    path = tmp_path / "poses.json"
    poses = [p for p in _pose_entries(vocabulary) if p["full"] != "Corrugator"]
    for i, pose in enumerate(poses):
        pose["index"] = i
    path.write_text(json.dumps({"poses": poses}))
    with pytest.raises(VocabularyError, match="'ict.poses' names 'Corrugator'") as caught:
        load_vocabulary(path)
    assert "facerig/data/ict.json" in str(caught.value)
    path.write_text(json.dumps({"poses": poses, "ict": {"shapes": ["jawOpen"], "poses": {"JawDrop": ["jawOpen"]}}}))
    smaller = load_vocabulary(path)
    assert len(smaller.actions) == 46 and smaller.ict_recipes()["LeftEyeClosed"] is None


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="cannot read"):
        load_vocabulary(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{\"poses\": [")
    with pytest.raises(VocabularyError, match="not valid JSON") as caught:
        load_vocabulary(broken)
    assert caught.value.path == broken


def test_mirror_permutation_swaps_left_and_right(vocabulary: Vocabulary) -> None:
    names = vocabulary.action_names
    perm = mirror_permutation(names)
    mirrored = [names[i] for i in perm]
    assert mirrored[names.index("LeftBrowLowerer")] == "RightBrowLowerer"
    assert mirrored[names.index("EyesLookRight")] == "EyesLookLeft"
    assert mirrored[names.index("JawLeft")] == "JawRight" and mirrored[names.index("JawDrop")] == "JawDrop"
    np.testing.assert_array_equal(perm[perm], np.arange(len(names)))  # mirroring twice is the identity
    assert sum(i != p for i, p in enumerate(perm)) == 2 * 14 + 2 * 3  # 14 sided pairs, 3 directional pairs
    with pytest.raises(VocabularyError, match="RightOnlyPose"):
        mirror_permutation(["JawDrop", "LeftOnlyPose"])
