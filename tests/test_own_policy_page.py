"""The page "Compress your own policy" (book/own-policy.md) runs as written.

Every ``$ `` command of the page's ``console`` blocks (with its ``> `` continuation lines, as in
a heredoc) runs in order in an empty folder that holds only a link to the committed
``checkpoints/``, with this environment's ``rlcomp`` and ``python`` first on the PATH. Each must
exit 0 and leave behind the files it names as its output (``--out``, ``--onnx``, ``--store``,
``cat > FILE``), which the later commands read; so the page cannot go stale.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "own-policy.md"
OUTPUT_OPTIONS = ("--out", "--onnx", "--store")
"""Options whose value is a file or folder the command writes."""

CONSOLE_BLOCK = re.compile(r"^```console\n(.*?)^```", re.DOTALL | re.MULTILINE)


def page_commands(text: str) -> list[str]:
    """The ``$ `` commands of ``text``'s console blocks in order, continuation lines joined."""
    commands: list[str] = []
    for block in CONSOLE_BLOCK.findall(text):
        current: list[str] | None = None
        for line in block.splitlines():
            if line.startswith("$ "):
                if current is not None:
                    commands.append("\n".join(current))
                current = [line[2:]]
            elif line.startswith("> ") or line == ">":
                if current is None:
                    raise ValueError(f"a continuation line before any command: {line!r}")
                current.append(line[2:])
            elif current is not None:  # an output line ends the command
                commands.append("\n".join(current))
                current = None
        if current is not None:
            commands.append("\n".join(current))
    return commands


def written_paths(command: str) -> list[str]:
    """The files a command says it writes: its output options' values and ``cat > FILE``."""
    first = command.splitlines()[0]
    heredoc = re.match(r"cat > (\S+) <<", first)
    if heredoc:
        return [heredoc.group(1)]
    return re.findall(r"(?:^|\s)(?:" + "|".join(OUTPUT_OPTIONS) + r")[ =](\S+)", first)


def test_page_commands_are_parsed_with_continuations():
    text = ("```console\n$ cat > a.yaml <<'EOF'\n> x: 1\n> EOF\n$ rlcomp sweep a.yaml --store "
            "s.sqlite\nsome output\n```\n\n```bash\n$ not-a-console-command\n```\n")
    assert page_commands(text) == ["cat > a.yaml <<'EOF'\nx: 1\nEOF",
                                   "rlcomp sweep a.yaml --store s.sqlite"]
    assert written_paths("cat > a.yaml <<'EOF'\nx: 1\nEOF") == ["a.yaml"]
    assert written_paths("rlcomp compress p.zip --spec \"$(python -c 'x')\" --out o.rlc "
                         "--onnx o.onnx") == ["o.rlc", "o.onnx"]


def test_the_page_walks_through_every_step():
    """Import, train, evaluate, choose, compress, evaluate the result, sweep: all on the page."""
    commands = page_commands(PAGE.read_text())
    subcommands = [c.split()[1] for c in commands if c.startswith("rlcomp ")]
    for step in ("evaluate", "train", "choose", "compress", "sweep"):
        assert step in subcommands, f"the page has no `rlcomp {step}` command"
    assert subcommands.index("choose") < subcommands.index("compress")
    assert subcommands.count("evaluate") >= 2, "the compressed policy is evaluated too"
    assert any(".zip" in c for c in commands), "a foreign (SB3) policy is imported"


@pytest.mark.slow
def test_every_command_of_the_page_runs_in_order(tmp_path):
    commands = page_commands(PAGE.read_text())
    assert len(commands) >= 7
    (tmp_path / "checkpoints").symlink_to(ROOT / "checkpoints", target_is_directory=True)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
    for n, command in enumerate(commands, 1):
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, (f"step {n} failed ({done.returncode}): {command}\n"
                                      f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        for path in written_paths(command):
            assert (tmp_path / path).exists(), f"step {n} did not write {path}: {command}"
    assert (tmp_path / "my-choice" / "report.json").is_file()
    sweep_file = next(c for c in commands if c.startswith("cat > "))
    grid = yaml.safe_load("\n".join(sweep_file.splitlines()[1:-1]))
    for checkpoint in grid["checkpoints"]:
        assert Path(checkpoint).name in done.stdout, f"the sweep's table lacks {checkpoint}"
    for spec in ("random", "dense", "quant=8", "prune=0.5", "prune=0.9"):
        assert spec in done.stdout, f"the sweep's table lacks {spec}"
