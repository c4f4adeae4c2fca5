"""Reading ICT-FaceKit from its folder and its archive, and refusing incomplete or foreign sources."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from facerig.cli.app import run
from facerig.errors import DatasetError
from facerig.trainer.ict import EXPRESSION_NAMES, PARTS, REGIONS, load_ict, required_files

README_LANDMARKS = [
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443,
    268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147,
    4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081,
    0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
]  # fmt: skip


def test_folder_gives_the_documented_model(ict_model):
    assert ict_model.neutral.shape == (26_719, 3)
    assert ict_model.identity_deltas.shape == (100, 26_719, 3)
    assert ict_model.expression_deltas.shape == (57, 26_719, 3)
    assert len(EXPRESSION_NAMES) == 57
    counts = ict_model.face_vertex_counts
    assert len(counts) == 26_384 and (counts == 4).sum() == 25_836 and (counts == 3).sum() == 548
    assert ict_model.triangles.shape == (2 * 25_836 + 548, 3)
    np.testing.assert_array_equal(ict_model.landmarks, README_LANDMARKS)
    size = np.ptp(ict_model.neutral, axis=0)  # about 25 × 34 × 22 cm
    np.testing.assert_allclose(size, [25, 34, 22], atol=1.5)
    assert ict_model.licence is not None and "MIT" in ict_model.licence


def test_deltas_move_what_their_names_say(ict_model):
    jaw = np.linalg.norm(ict_model.expression("jawOpen"), axis=1)
    assert jaw.max() > 2.0  # cm
    chin = ict_model.landmarks[8]
    assert jaw[chin] > 1.0 and ict_model.expression("jawOpen")[chin, 1] < 0  # the chin goes down
    blink = np.linalg.norm(ict_model.expression("eyeBlink_L"), axis=1)
    assert ict_model.neutral[blink.argmax(), 0] > 0  # the character's left is +X
    assert np.abs(ict_model.identity_deltas[0]).max() > 0.5


def test_parts_and_regions_cover_every_vertex(ict_model):
    part = ict_model.part_of_vertex()
    assert part.min() == 0 and part.max() == len(PARTS) - 1
    region = ict_model.region_of_vertex()
    assert REGIONS[region[ict_model.landmarks].max()] == "face"  # all 68 landmarks on the narrow face
    assert REGIONS[region[22_000]] == "eyeball" and REGIONS[region[20_000]] == "teeth"


def test_archive_reads_the_same_arrays(ict_model, ict_archive):
    from_archive = load_ict(ict_archive)
    np.testing.assert_array_equal(from_archive.neutral, ict_model.neutral)
    np.testing.assert_array_equal(from_archive.identity_deltas, ict_model.identity_deltas)
    np.testing.assert_array_equal(from_archive.expression_deltas, ict_model.expression_deltas)
    np.testing.assert_array_equal(from_archive.face_vertex_indices, ict_model.face_vertex_indices)
    assert from_archive.licence == ict_model.licence


def _link_folder(ict_dir, target, skip=()):
    target.mkdir()
    for name in required_files():
        if name not in skip:
            (target / name).symlink_to(ict_dir / name)
    return target


def test_folder_lacking_a_file_is_refused_by_name(ict_dir, tmp_path):
    folder = _link_folder(ict_dir, tmp_path / "FaceXModel", skip={"identity042.obj"})
    with pytest.raises(DatasetError, match="FaceXModel folder lacks identity042.obj"):
        load_ict(folder)
    assert run(["data", "ict", str(folder), "-o", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()


def test_folder_with_a_foreign_topology_is_refused(ict_dir, tmp_path):
    folder = _link_folder(ict_dir, tmp_path / "FaceXModel", skip={"browDown_L.obj"})
    text = (ict_dir / "browDown_L.obj").read_text()
    (folder / "browDown_L.obj").write_text(text.replace("\nf ", "\nf 1/1 2/2 3/3\nf ", 1))
    with pytest.raises(DatasetError, match="browDown_L.obj does not share the neutral's topology"):
        load_ict(folder)


def _tar_gz(path, members):
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_archive_lacking_files_is_refused_by_name(ict_dir, tmp_path):
    members = {
        f"ICT-FaceKit/FaceXModel/{name}": (ict_dir / name).read_bytes()
        for name in ("generic_neutral_mesh.obj", "vertex_indices.json")
    }
    archive = _tar_gz(tmp_path / "partial.tar.gz", members)
    with pytest.raises(DatasetError, match=r"archive lacks FaceXModel/browDown_L.obj \(and 156 more\)"):
        load_ict(archive)


def test_non_archives_and_missing_paths_are_refused(tmp_path):
    junk = tmp_path / "junk.tar.xz"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(DatasetError, match="not a readable tar archive"):
        load_ict(junk)
    with pytest.raises(DatasetError, match="not found"):
        load_ict(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="FaceXModel folder lacks generic_neutral_mesh.obj"):
        load_ict(empty)
