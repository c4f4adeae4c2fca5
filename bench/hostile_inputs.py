"""Time and memory of every hostile input in tests/io/hostile_corpus.py, through the library and the CLI.

    python bench/hostile_inputs.py                  # a table on stdout
    python bench/hostile_inputs.py --cli --markdown # also through `facerig info` / `rig --poses`, as Markdown

Each case runs in this one process, one after another: "peak MB" is tracemalloc's peak (Python and numpy
allocations), "RSS +MB" how far the process's peak resident set grew during the case (native allocations
such as USD's; 0 when the case stayed under an earlier case's peak).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "io"))

from hostile_corpus import run_case, write_corpus  # noqa: E402
from markdown_tables import markdown_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", action="store_true", help="also run each case through the CLI in-process")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="facerig-hostile-") as folder:
        for case, path in write_corpus(Path(folder) / "corpus"):
            outcome = run_case(case, path)
            reason = "loaded" if outcome.error is None else getattr(outcome.error, "reason", repr(outcome.error))
            row = [case.name, reason, f"{outcome.seconds:.3f}", f"{outcome.peak_python_mb:.1f}",
                   f"{outcome.rss_growth_mb:.0f}"]  # fmt: skip
            if args.cli:
                scratch = Path(folder) / "scratch" / case.name.replace(" ", "_")
                scratch.mkdir(parents=True)
                cli = run_case(case, path, cli_scratch=scratch)
                row += [str(cli.exit_code), f"{cli.seconds:.3f}", f"{cli.peak_python_mb:.1f}"]
            rows.append(row)

    header = ["case", "outcome", "seconds", "peak MB", "RSS +MB"]
    if args.cli:
        header += ["CLI exit", "CLI s", "CLI peak MB"]
    if args.markdown:
        print("\n".join(markdown_table(header, ([cell.replace("|", "\\|") for cell in row] for row in rows))))
        return
    widths = [max(len(header[i]), *(min(len(row[i]), 70) for row in rows)) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(cell[:70].ljust(w) for cell, w in zip(row, widths)))


if __name__ == "__main__":
    main()
