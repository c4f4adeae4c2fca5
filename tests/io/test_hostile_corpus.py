"""Every hostile input of tests/io/hostile_corpus.py is refused with one error naming the file and the
problem, by the library and by the CLI, at bounded memory and without hanging; the valid ones load."""

from __future__ import annotations

from pathlib import Path

import pytest

from facerig.errors import FacerigError
from hostile_corpus import Case, cases, load_in_child, run_case, write_corpus

CASES = cases()
# Per case, far above what a refusal costs (a few MB) and far below what the unbounded readers took
# (4.8 GB for the zero-filled GLB, 6.3 GB for the expanding usdc, gigabytes for the bundles).
MAX_PYTHON_MB = 300
MAX_RSS_GROWTH_MB = 400
# Binary USD files whose arrays declare more than a mesh within the limits can have: refused from the headers,
# before USD allocates what they declare (before the check, 38 MB for the expanding file, 240 MB for the one
# declaring 60M faces, 800 MB for 200M corners; after it, what opening no file costs).
USD_DECLARING = [case for case in CASES if case.name.startswith(("usdc", "usdz")) and " declaring " in case.name
                 or case.name == "usdc faces expanding past the budget"]
MAX_DECLARED_RSS_GROWTH_MB = 16


def tiered(fast: set[str]) -> list:
    """Every case, for `make test`; the cases not in ``fast`` are marked slow, out of `make test-fast`."""
    return [pytest.param(case, id=case.name, marks=() if case.name in fast else pytest.mark.slow) for case in CASES]


# Valid, but made big so that a reader with a quadratic loop hangs on it: 1-2 s in a reader without one.
BIG_ON_PURPOSE = {"obj 100k group lines"}
# The CLI turns a reader's refusals into one red line the same way whatever the refusal, and each case costs
# about 0.3 s there (Typer builds its command line afresh per call): the fast tier runs the first refusal of
# each kind of input and file type, and the library test checks every refusal's message.
CLI_FAST: set[str] = set()
_readers: set[tuple[str, str]] = set()
for _case in CASES:
    if _case.reason is not None and (_case.kind, Path(_case.file).suffix) not in _readers:
        _readers.add((_case.kind, Path(_case.file).suffix))
        CLI_FAST.add(_case.name)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {case.name: path for case, path in write_corpus(tmp_path_factory.mktemp("hostile"))}


def test_the_corpus_covers_every_reader() -> None:
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)
    suffixes = {Path(case.file).suffix for case in CASES}
    assert {".obj", ".ply", ".gltf", ".glb", ".usda", ".usdc", ".usdz", ".npz", ".json"} <= suffixes


@pytest.mark.parametrize("case", tiered({case.name for case in CASES} - BIG_ON_PURPOSE))
def test_library_refuses_hostile_input(case: Case, corpus: dict[str, Path]) -> None:
    path = corpus[case.name]
    outcome = run_case(case, path)
    if case.reason is None:
        assert outcome.error is None, f"{case.name}: {outcome.error!r}"
    else:
        assert isinstance(outcome.error, FacerigError), f"{case.name}: {outcome.error!r}"
        message = str(outcome.error)
        if case.kind != "batch":  # an option value has no file
            assert path.name in message, message
        assert case.reason in message, message
    assert outcome.peak_python_mb < MAX_PYTHON_MB, f"{case.name}: {outcome.peak_python_mb:.0f} MB"
    assert outcome.rss_growth_mb < MAX_RSS_GROWTH_MB, f"{case.name}: peak RSS grew {outcome.rss_growth_mb:.0f} MB"


@pytest.mark.parametrize("case", tiered(CLI_FAST))
def test_cli_prints_one_red_line(case: Case, corpus: dict[str, Path], tmp_path: Path) -> None:
    path = corpus[case.name]
    outcome = run_case(case, path, cli_scratch=tmp_path)
    assert outcome.error is None, f"{case.name}: the CLI raised {outcome.error!r}"
    assert "Traceback" not in outcome.stderr
    if case.reason is None:
        assert outcome.exit_code == 0, outcome.stderr
        return
    assert outcome.exit_code == 1, outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), outcome.stderr
    if case.kind != "batch":
        assert path.name in lines[0], lines[0]
    assert case.reason in lines[0], lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "output written"
    assert outcome.peak_python_mb < MAX_PYTHON_MB, f"{case.name}: {outcome.peak_python_mb:.0f} MB"
    assert outcome.rss_growth_mb < MAX_RSS_GROWTH_MB, f"{case.name}: peak RSS grew {outcome.rss_growth_mb:.0f} MB"


@pytest.mark.slow  # a child Python process per case; the refusals themselves are checked in-process above
@pytest.mark.parametrize("case", USD_DECLARING, ids=[case.name for case in USD_DECLARING])
def test_usd_arrays_are_refused_before_usd_allocates_them(case: Case, corpus: dict[str, Path]) -> None:
    """USD allocates a crate array's declared length before it reads a byte of it; the refusal, from the
    file's headers, comes first. Measured in a fresh process (see load_in_child)."""
    assert len(USD_DECLARING) >= 5
    path = corpus[case.name]
    error, rss_growth_mb = load_in_child(path)
    assert error is not None and error.startswith("MeshLoadError: ") and str(path) in error, error
    assert case.reason in error and "\n" not in error, error
    assert rss_growth_mb < MAX_DECLARED_RSS_GROWTH_MB, f"{case.name}: peak RSS grew {rss_growth_mb:.0f} MB"
