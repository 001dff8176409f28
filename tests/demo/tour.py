"""The README's tour, read from README.md itself: its steps, what each must print, and a run of
all of them in one bash (so variables carry from step to step, as in a terminal)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPECT = "# → "
MARK = "@@tour-step "


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def tour_block(readme: str) -> str:
    """The first ```bash block after the "## A short tour" heading."""
    section = readme.split("\n## A short tour\n", 1)[1]
    match = re.search(r"```bash\n(.*?)\n```", section, re.S)
    assert match, "no ```bash block in the tour"
    return match.group(1)


def steps(block: str) -> list[Step]:
    """Commands (continuation lines joined) with the `# → ` lines that follow each; other
    comment lines and blank lines are skipped."""
    out: list[Step] = []
    lines = block.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith(EXPECT):
            assert out, "an expectation before any command"
            out[-1].expected.append(line[len(EXPECT):])
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command = [line]
        while command[-1].rstrip().endswith("\\") or _open_quote("\n".join(command)):
            command.append(lines[i])
            i += 1
        out.append(Step("\n".join(command)))
    return out


def _open_quote(text: str) -> bool:
    """Whether a single-quoted string is still open (a python3 -c '...' over two lines)."""
    code = re.sub(r"(^|\s)# .*$", "", text, flags=re.M)  # comments: "# " after a space
    return code.count("'") % 2 == 1


def pattern(expected: str) -> re.Pattern[str]:
    """`...` matches anything; the rest literally; the whole line."""
    return re.compile(".*?".join(re.escape(part) for part in expected.split("...")), re.S)


def check(step: Step, output: str) -> list[str]:
    """What is wrong with `output` for `step` (empty when right): each expected line must match
    an output line, in order; a step with no expectations must print nothing."""
    printed = [line for line in output.split("\n") if line.strip()]
    if not step.expected:
        return [f"{step.command!r} printed {printed!r}"] if printed else []
    problems = []
    at = 0
    for want in step.expected:
        regex = pattern(want)
        while at < len(printed) and not regex.fullmatch(printed[at]):
            at += 1
        if at == len(printed):
            problems.append(f"{step.command!r}: no line like {want!r} in {printed!r}")
            break
        at += 1
    return problems


def run(all_steps: list[Step], env: dict[str, str], timeout_s: float) -> list[str]:
    """Run the steps in one bash (from the repository); returns each step's output."""
    # curl prints no final newline: each marker starts on a line of its own.
    script = "\n".join(f"printf '\\n{MARK}{n}\\n'\n{s.command}"
                        for n, s in enumerate(all_steps))
    bin_dir = str(Path(sys.executable).parent)
    full_env = {**os.environ, **env, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout_s, check=False)
    assert done.stderr == "", done.stderr
    chunks = re.split(rf"^{re.escape(MARK)}\d+\n", done.stdout, flags=re.M)
    assert len(chunks) == len(all_steps) + 1, done.stdout
    return chunks[1:]
