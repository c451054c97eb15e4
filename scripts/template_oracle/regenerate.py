"""Regenerate the golden files of the template corpus with real Go.

    python scripts/template_oracle/regenerate.py          # writes cases/*.golden.json
    python scripts/template_oracle/regenerate.py --check  # fails if a golden file would change

Needs Go (Debian's golang-go 1.19 is the reference: ``apt-get install golang-go``) and nothing
else: the oracle uses only the standard library. The tests never run Go; they read the committed
golden files.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ORACLE_DIR = Path(__file__).resolve().parent
REPO_ROOT = ORACLE_DIR.parents[1]
CASES_DIR = REPO_ROOT / "tests" / "templates" / "cases"
REFERENCE_GO = "go1.19"


def go_version(go: str) -> str:
    output = subprocess.run([go, "version"], check=True, capture_output=True, text=True).stdout
    return output.split()[2]


def run_oracle(go: str, cases_dir: Path) -> None:
    subprocess.run([go, "run", ".", "-cases", str(cases_dir)], cwd=ORACLE_DIR, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--go", default=shutil.which("go") or "go", help="the go binary")
    options = parser.parse_args()

    version = go_version(options.go)
    if not version.startswith(REFERENCE_GO):
        print(f"warning: golden files come from {REFERENCE_GO}; this is {version}", file=sys.stderr)

    if not options.check:
        run_oracle(options.go, CASES_DIR)
        return 0

    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        for case_file in CASES_DIR.glob("*.json"):
            if not case_file.name.endswith(".golden.json"):
                shutil.copy(case_file, scratch_dir / case_file.name)
        run_oracle(options.go, scratch_dir)
        stale = [
            golden.name
            for golden in sorted(scratch_dir.glob("*.golden.json"))
            if not (CASES_DIR / golden.name).exists()
            or (CASES_DIR / golden.name).read_bytes() != golden.read_bytes()
        ]
    if stale:
        print("golden files out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    print("golden files are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
