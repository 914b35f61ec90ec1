"""The shell that runs inside the Xen lab's dom0 and guests is checked here, where a
mistake costs a second instead of a 40-minute CI run.

The lab's dom0 is a minimal initramfs: it has /proc and /dev/pts but no /dev/fd, so bash
process substitution (`< <(cmd)`, `>(cmd)`) fails there with "/dev/fd/63: No such file or
directory" although it works on every developer machine (it broke scenario 01 in CI once).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

LAB = Path(__file__).parent / "xen"
# What runs inside the lab (dom0 or guest). The image builders under images/ run on the
# CI host, which has /dev/fd.
IN_LAB = sorted(
    [*LAB.glob("scenarios/*.sh"), LAB / "dom0" / "lib.sh", LAB / "dom0" / "run-lab.sh",
     LAB / "dom0" / "init", LAB / "arm" / "dom0-init", LAB / "arm" / "guest-init",
     LAB / "images" / "guest-init.sh"]
)
# `<(` or `>(` outside arithmetic: process substitution.
PROCESS_SUBSTITUTION = re.compile(r"(?<![<>$])[<>]\((?!\()")


def _code(line: str) -> str:
    """The line without a trailing comment (good enough for these scripts)."""
    return re.sub(r"(^|\s)#.*", "", line)


@pytest.mark.parametrize("script", IN_LAB, ids=lambda p: str(p.relative_to(LAB)))
def test_no_process_substitution(script: Path) -> None:
    hits = [
        f"{script.name}:{n}: {line.strip()}"
        for n, line in enumerate(script.read_text().splitlines(), 1)
        if PROCESS_SUBSTITUTION.search(_code(line))
    ]
    assert not hits, "process substitution needs /dev/fd, which the lab dom0 lacks:\n" + "\n".join(hits)


@pytest.mark.parametrize("script", IN_LAB, ids=lambda p: str(p.relative_to(LAB)))
def test_parses(script: Path) -> None:
    first = script.read_text().split("\n", 1)[0]
    shell = "sh" if first.startswith("#!") and "bash" not in first else "bash"
    result = subprocess.run([shutil.which(shell) or shell, "-n", str(script)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_check_sees_process_substitution() -> None:
    assert PROCESS_SUBSTITUTION.search('mapfile -t got < <(jq -r . <<<"$x")')
    assert PROCESS_SUBSTITUTION.search("tee >(wc -l)")
    assert not PROCESS_SUBSTITUTION.search("n=$((n + 1)); x=$(<file)")
    assert not PROCESS_SUBSTITUTION.search('mapfile -t got <<<"$(jq -r .)"')
