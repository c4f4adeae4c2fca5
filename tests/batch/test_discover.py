"""Discovery: which files, in which order, under which output names; shards; symlink policy. No rigging."""

from __future__ import annotations

import os
import random
from pathlib import Path, PurePosixPath

import pytest

from facerig.batch.discover import discover, select_shard
from facerig.batch.options import BatchOptions, Shard
from facerig.errors import BatchError, ConfigError


def touch(path: Path, text: str = "v 0 0 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "heads"
    for name in ("b.obj", "a.OBJ", "x/c.ply", "x/y/d.glb", "x/notes.txt", "x/texture.png", "z.usda"):
        touch(root / name, text=f"content of {name}\n")
    return root


def relatives(items) -> list[str]:
    return [str(item.relative) for item in items]


def test_folder_order_extensions_and_mirrored_output_names(tree: Path, tmp_path: Path) -> None:
    items = discover([tree], tmp_path / "out", BatchOptions())
    # Recursive, supported extensions in any case only, sorted by path below the root.
    assert relatives(items) == ["a.OBJ", "b.obj", "x/c.ply", "x/y/d.glb", "z.usda"]
    assert [str(item.output_stem) for item in items] == ["a", "b", "x/c", "x/y/d", "z"]
    out = tmp_path / "out"
    assert items[3].output_path(out, ".facerig.npz") == out / "x" / "y" / "d.facerig.npz"
    assert all(len(item.content_hash) == 64 and item.problem is None for item in items)
    # The same set listed in another order (and twice) gives the same items.
    again = discover([tree / "z.usda", tree, tree / "b.obj"], out, BatchOptions())
    assert relatives(again) == relatives(items)


def test_include_and_exclude_globs(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert relatives(discover([tree], out, BatchOptions(include=("*.obj", "*.OBJ")))) == ["a.OBJ", "b.obj"]
    assert relatives(discover([tree], out, BatchOptions(include=("x/*",)))) == ["x/c.ply", "x/y/d.glb"]
    assert relatives(discover([tree], out, BatchOptions(exclude=("y", "*.usda")))) == ["a.OBJ", "b.obj", "x/c.ply"]


def test_explicit_file_is_taken_whatever_its_extension(tree: Path, tmp_path: Path) -> None:
    items = discover([tree / "x" / "notes.txt"], tmp_path / "out", BatchOptions())
    assert relatives(items) == ["notes.txt"]  # rigging it then fails with the loader's clear reason


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="input not found"):
        discover([tmp_path / "nope"], tmp_path / "out", BatchOptions())


def test_same_stem_in_one_folder_keeps_full_names(tmp_path: Path) -> None:
    root = tmp_path / "heads"
    touch(root / "head.obj"), touch(root / "head.ply"), touch(root / "other.obj")
    items = discover([root], tmp_path / "out", BatchOptions())
    assert [str(item.output_stem) for item in items] == ["head.obj", "head.ply", "other"]


def test_same_path_below_two_roots_is_rejected_not_overwritten(tmp_path: Path) -> None:
    touch(tmp_path / "vendor1" / "head.obj", "one\n"), touch(tmp_path / "vendor2" / "head.obj", "two\n")
    items = discover([tmp_path / "vendor2", tmp_path / "vendor1"], tmp_path / "out", BatchOptions())
    assert [item.problem is None for item in items] == [True, False]
    assert items[0].path.parent.name == "vendor1" and "would overwrite" in items[1].problem


def test_output_folder_inside_the_input_root_is_not_searched(tree: Path) -> None:
    touch(tree / "rigs" / "b.glb")  # an output of an earlier run
    assert "rigs/b.glb" not in relatives(discover([tree], tree / "rigs", BatchOptions()))
    assert "rigs/b.glb" in relatives(discover([tree], tree.parent / "elsewhere", BatchOptions()))


def test_symlinks_out_of_the_root_are_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "heads"
    touch(root / "real.obj")
    outside = touch(tmp_path / "private" / "secret.obj")
    (root / "inside_link.obj").symlink_to(root / "real.obj")
    (root / "leak.obj").symlink_to(outside)
    (root / "leakdir").symlink_to(outside.parent, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)

    items = {str(item.relative): item for item in discover([root], tmp_path / "out", BatchOptions())}
    assert sorted(items) == ["inside_link.obj", "leak.obj", "leakdir", "real.obj"]
    assert items["inside_link.obj"].problem is None and items["real.obj"].problem is None
    for name in ("leak.obj", "leakdir"):
        assert "outside the input root" in items[name].problem and items[name].content_hash == ""

    allowed = discover([root], tmp_path / "out", BatchOptions(follow_symlinks=True))
    assert relatives(allowed) == ["inside_link.obj", "leak.obj", "leakdir/secret.obj", "real.obj"]
    assert all(item.problem is None for item in allowed)


def test_files_over_the_size_limit_are_not_read(tmp_path: Path) -> None:
    big = tmp_path / "heads" / "big.obj"
    touch(big, "v 0 0 0\n" * 200_000)  # 1.6 MB
    (item,) = discover([big.parent], tmp_path / "out", BatchOptions(max_file_mb=1))
    assert item.content_hash == "" and item.size == big.stat().st_size and len(item.shard_key) == 64


def test_shards_cover_the_set_exactly_once_whatever_the_listing_order(tmp_path: Path) -> None:
    root = tmp_path / "heads"
    files = [touch(root / f"g{n // 10}" / f"head{n:02d}.obj", f"v {n} 0 0\n") for n in range(30)]
    out = tmp_path / "out"
    full = discover([root], out, BatchOptions())
    shards = [select_shard(full, Shard(k, 3)) for k in (1, 2, 3)]
    names = [str(item.relative) for shard in shards for item in shard]
    assert sorted(names) == sorted(relatives(full)) and len(names) == len(set(names)) == 30
    assert all(4 <= len(shard) <= 16 for shard in shards)  # a hash partition, roughly even

    # Another node lists the files one by one in another order: each shard is the same set.
    shuffled = files[:]
    random.Random(7).shuffle(shuffled)
    other = discover(shuffled, out, BatchOptions())
    for k, shard in zip((1, 2, 3), shards):
        assert {item.content_hash for item in select_shard(other, Shard(k, 3))} == {i.content_hash for i in shard}


def test_shard_parsing() -> None:
    assert Shard.parse("2/3") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
    for bad in ("0/3", "4/3", "a/b", "3", "1/0"):
        with pytest.raises(ConfigError):
            Shard.parse(bad)


def test_nasty_names_stay_names(tmp_path: Path) -> None:
    name = "..;$(rm -rf x) \n ünï `..` -.obj"
    touch(tmp_path / "heads" / "..." / name)
    (item,) = discover([tmp_path / "heads"], tmp_path / "out", BatchOptions())
    assert item.relative == PurePosixPath("...", name)
    out = (tmp_path / "out").resolve()
    target = item.output_path(out, ".facerig.npz")
    assert os.path.commonpath([out, target.resolve()]) == str(out) and target.name.endswith(".facerig.npz")


def test_a_symlink_loop_is_one_failed_item_not_the_end_of_the_batch(tree: Path, tmp_path: Path) -> None:
    (tree / "x" / "loop.obj").symlink_to("loop.obj")  # points at itself
    (tree / "x" / "ring").symlink_to("../x", target_is_directory=True)  # a folder loop: searched once
    items = discover([tree], tmp_path / "out", BatchOptions())
    assert relatives(items) == ["a.OBJ", "b.obj", "x/c.ply", "x/loop.obj", "x/y/d.glb", "z.usda"]
    loop = items[3]
    assert loop.problem is not None and "cannot follow" in loop.problem
    assert [item.problem for item in items if item is not loop] == [None] * 5


def test_outputs_inside_the_input_folder_are_neither_inputs_nor_allowed_onto_inputs(tmp_path: Path) -> None:
    """`batch d -o d -f glb`: a d/t.glb input would be overwritten by t's own output; d/s.glb with its sidecar is
    facerig's output of d/s.obj, and the batch state is facerig's; neither is rigged again."""
    folder = tmp_path / "d"
    touch(folder / "s.obj")
    touch(folder / "t.glb", "a user's glb")
    touch(folder / "s.glb", "facerig's glb")
    touch(folder / "s.glb.facerig.json", "{}")
    touch(folder / ".facerig-batch" / "items" / "x.usda", "not an input")
    items = discover([folder], folder, BatchOptions(formats=("glb",)))
    assert relatives(items) == ["s.obj", "t.glb"]
    assert items[0].problem is None
    assert "would overwrite the input" in items[1].problem and str(folder / "t.glb") in items[1].problem
