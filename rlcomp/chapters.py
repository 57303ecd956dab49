"""Run the book's chapters: jupytext text files executed by papermill, with provenance.

A chapter is ``notebooks/NAME.py``, a jupytext percent-format file with one cell tagged
``parameters``. Running it injects ``profile`` (and any ``--param``), executes it in a ``python3``
kernel whose working directory is the repository root, and writes the executed notebook with its
provenance under the ``rlcomp`` key of the notebook metadata::

    python -m rlcomp.chapters run 00-setup --profile full --out book/00-setup.ipynb
    python -m rlcomp.chapters baseline      # every chapter, smoke profile, into tests/baselines/
    python -m rlcomp.chapters list
    python -m rlcomp.chapters retag book/*.ipynb   # set the presentation tags of executed notebooks

The executed notebook carries the tags that decide what a reader of the book sees
(:func:`presentation_tags`): code is hidden unless the chapter source asks to show it, and the
``parameters`` cells and any cell with an ``# NBVAL_...`` marker never show their code. ``retag``
sets the same tags on notebooks already executed, changing nothing else.

The notebook is written to a temporary file and renamed into place, so a failed run leaves no
half-written notebook; it ends with one line on stderr and exit code 1. A mistake in the request
(unknown chapter, bad profile, a path that is not a notebook) ends with one line on stderr and exit
code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

from rlcomp.envs import environment_variables
from rlcomp.files import atomic_write

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: chapters execute here, so relative paths such as ``checkpoints/`` work."""

PROFILES = ("smoke", "full")
"""The profiles every chapter accepts (see DESIGN.md, "Profiles")."""

KERNEL = "python3"
"""The Jupyter kernel that executes chapters."""

CHAPTER_PATTERN = re.compile(r"^\d\d-[A-Za-z0-9_-]+$")
"""Names of chapter files in ``notebooks/`` (without ``.py``): two digits, a dash, a name."""

BASELINE_DIR = Path("tests") / "baselines"
"""Where ``baseline`` writes ``NAME.smoke.ipynb``, relative to the repository root."""

KERNEL_ENV = {
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}
"""Environment of the kernel: fixed hashing, inline figures (even where ``MPLBACKEND=Agg`` is
exported for scripts), and no debugger notice about frozen modules."""

KERNEL_ENCRYPTION = "auto"
"""CurveZMQ encryption between papermill and the kernel when both support it (no plain-TCP
warning from the kernel)."""

EXIT_FAILED = 1
EXIT_USAGE = 2

REMOVE_INPUT = "remove-input"
REMOVE_CELL = "remove-cell"
INPUT_CHOICES = frozenset({"show-input", "hide-input", REMOVE_INPUT, REMOVE_CELL})
"""Tags with which a chapter's source decides itself how a code cell's input is shown; any other
code cell gets :data:`REMOVE_INPUT`."""

PARAMETER_TAGS = frozenset({"parameters", "injected-parameters"})
"""The chapter's ``parameters`` cell and the one papermill adds: removed from the book."""

NBVAL_MARKER = re.compile(r"#\s*NBVAL_")
"""A regression-test marker (``# NBVAL_CHECK_OUTPUT``): a cell that has one never shows its code."""


class ChapterError(ValueError):
    """A request that cannot be run: unknown chapter, bad profile, malformed chapter file."""


class ChapterFailed(RuntimeError):
    """A chapter that raised while it executed, or a kernel that died."""


def chapter_names(root: Path = ROOT) -> list[str]:
    """The chapters in ``root/notebooks``, sorted by name."""
    return sorted(p.stem for p in (root / "notebooks").glob("*.py")
                  if CHAPTER_PATTERN.match(p.stem))


def chapter_path(name: str, root: Path = ROOT) -> Path:
    """The text file of chapter ``name``.

    Raises:
        ChapterError: if there is no such chapter.
    """
    names = chapter_names(root)
    if name not in names:
        known = ", ".join(names) or "none"
        raise ChapterError(f"unknown chapter {name!r} (chapters in notebooks/: {known})")
    return root / "notebooks" / f"{name}.py"


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is one of :data:`PROFILES`.

    Raises:
        ChapterError: otherwise.
    """
    if profile not in PROFILES:
        raise ChapterError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return profile


def read_chapter(path: Path):
    """Read a jupytext percent file into a notebook with a ``python3`` kernelspec.

    Raises:
        ChapterError: unless exactly one cell is tagged ``parameters``.
    """
    import jupytext

    nb = jupytext.read(path, fmt="py:percent")
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ChapterError(f"{path}: needs exactly one cell tagged 'parameters', has {len(tagged)}")
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    return nb


def cell_presentation_tags(cell) -> list[str]:
    """The tags of ``cell`` with the presentation tags the book needs; the cell is not changed.

    Rules, for code cells (other cells keep their tags):

    - the ``parameters`` and ``injected-parameters`` cells get ``remove-cell``;
    - a cell whose source has an ``# NBVAL_...`` marker gets ``remove-input`` (whatever else it
      is tagged), unless it is removed whole;
    - any other cell gets ``remove-input`` unless the chapter source chose how to show its input
      (one of :data:`INPUT_CHOICES`). ``remove-output`` is no such choice: a cell that only glues
      a figure hides its code too.

    Tags already there are kept, in order; new ones are appended, so applying this twice changes
    nothing more.
    """
    tags = list(cell.get("metadata", {}).get("tags", []))
    if cell.get("cell_type") != "code":
        return tags
    if PARAMETER_TAGS & set(tags):
        wanted = REMOVE_CELL
    elif REMOVE_CELL in tags:
        wanted = None
    elif NBVAL_MARKER.search(_source(cell)):
        wanted = REMOVE_INPUT
    elif INPUT_CHOICES & set(tags):
        wanted = None
    else:
        wanted = REMOVE_INPUT
    if wanted is not None and wanted not in tags:
        tags.append(wanted)
    return tags


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def presentation_tags(nb):
    """Set the tags that decide what a reader of the book sees, on every cell of ``nb``.

    See :func:`cell_presentation_tags` for the rules. Only the ``tags`` of cell metadata change
    (and only where a tag is added); sources and outputs are untouched. Idempotent.

    Returns:
        ``nb``, changed in place.
    """
    for cell in nb.cells:
        tags = cell_presentation_tags(cell)
        if tags != list(cell.get("metadata", {}).get("tags", [])):
            cell.setdefault("metadata", {})["tags"] = tags
    return nb


def read_notebook(path: str | os.PathLike):
    """Read the notebook at ``path`` as it is stored (no format conversion).

    Raises:
        ChapterError: if ``path`` is missing or is not a notebook.
    """
    import nbformat

    path = Path(path)
    if path.suffix != ".ipynb":
        raise ChapterError(f"{path}: not a notebook (.ipynb)")
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=nbformat.NO_CONVERT)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("no list of cells")
    except FileNotFoundError:
        raise ChapterError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ChapterError(f"{path}: is a folder, not a notebook") from None
    except Exception as exc:  # not UTF-8, not JSON, not a notebook: all say the same to the user
        raise ChapterError(f"{path}: not a Jupyter notebook ({type(exc).__name__})") from None
    return nb


def retag(paths: Sequence[str | os.PathLike]) -> list[bool]:
    """Set the presentation tags of the executed notebooks at ``paths``.

    Every notebook is read before any is written, and each is written atomically, so a bad path
    changes no file. A notebook whose tags are already right is not rewritten.

    Returns:
        For each path, whether its file changed.

    Raises:
        ChapterError: if a path is missing or is not a notebook.
    """
    notebooks = [read_notebook(path) for path in paths]
    changed = []
    for path, nb in zip(paths, notebooks, strict=True):
        before = [list(c.get("metadata", {}).get("tags", [])) for c in nb.cells]
        presentation_tags(nb)
        after = [list(c.get("metadata", {}).get("tags", [])) for c in nb.cells]
        if after != before:
            write_notebook(nb, Path(path))
        changed.append(after != before)
    return changed


def provenance(name: str, profile: str, parameters: dict, command: Sequence[str]) -> dict:
    """The ``rlcomp`` notebook metadata: chapter, profile, parameters and provenance.

    The provenance (commit, date, machine, package version) is the one checkpoints record, with the
    command as one shell string.
    """
    from rlcomp.provenance import provenance as code_provenance

    origin = code_provenance(list(command))
    origin["date"] = origin.pop("created")
    origin["command"] = shlex.join(command)
    return {"chapter": name, "profile": profile, "parameters": parameters, **origin}


def write_notebook(nb, out: Path) -> None:
    """Write ``nb`` to ``out`` atomically: nothing is half-written if the write fails."""
    import nbformat

    atomic_write(out, nbformat.writes(nb).encode("utf-8"))


def run_chapter(name: str, profile: str, out: str | os.PathLike, *, root: Path = ROOT,
                parameters: dict | None = None, command: Sequence[str] | None = None) -> Path:
    """Execute chapter ``name`` in ``profile`` and write the executed notebook to ``out``.

    Args:
        name: a chapter in ``root/notebooks`` (e.g. ``00-setup``).
        profile: ``smoke`` or ``full``.
        out: the ``.ipynb`` to write; nothing is written unless the whole chapter ran.
        root: the repository root; the kernel runs there.
        parameters: more papermill parameters (``profile`` is always set from ``profile``).
        command: the command recorded in the provenance (default: this process's arguments).

    Returns:
        The path written.

    Raises:
        ChapterError: for an unknown chapter, a bad profile or a malformed chapter file.
        ChapterFailed: if a cell raised or the kernel died.
    """
    check_profile(profile)
    out = Path(out)
    if out.suffix != ".ipynb":
        raise ChapterError(f"--out must name an .ipynb file, got {str(out)!r}")
    if "profile" in (parameters or {}):
        raise ChapterError("set the profile with --profile, not as a parameter")
    nb = read_chapter(chapter_path(name, root))

    import papermill
    from papermill.exceptions import PapermillExecutionError
    from traitlets.config import Config

    params = {"profile": profile, **(parameters or {})}
    command = list(command) if command is not None else [sys.executable, *sys.argv]
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        with environment_variables(KERNEL_ENV):
            executed = papermill.execute_notebook(
                nb, None, parameters=params, kernel_name=KERNEL, language="python",
                cwd=str(root), progress_bar=False, log_output=False,
                config=Config(KernelManager={"transport_encryption": KERNEL_ENCRYPTION}))
    except PapermillExecutionError as exc:
        raise ChapterFailed(f"{name} ({profile}) failed in cell {exc.exec_count}: "
                            f"{exc.ename}: {_one_line(exc.evalue)}") from exc
    except Exception as exc:  # a dead kernel, a timeout: anything that stopped the run
        raise ChapterFailed(f"{name} ({profile}) failed: {type(exc).__name__}: "
                            f"{_one_line(str(exc))}") from exc
    # papermill records its input; ours is the text file, not the notebook object read from it
    executed.metadata.get("papermill", {}).update(
        input_path=str(chapter_path(name, root).relative_to(root)), output_path=str(out))
    executed.metadata["rlcomp"] = provenance(name, profile, params, command)
    presentation_tags(executed)
    write_notebook(executed, out)
    return out


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " / ".join(lines) if lines else "(no message)"


def refresh_baselines(root: Path = ROOT, command: Sequence[str] | None = None,
                      names: Sequence[str] | None = None) -> list[Path]:
    """Re-execute chapters (default: all) in the smoke profile into ``tests/baselines/``."""
    written = []
    for name in names or chapter_names(root):
        chapter_path(name, root)
        out = root / BASELINE_DIR / f"{name}.smoke.ipynb"
        written.append(run_chapter(name, "smoke", out, root=root, command=command))
    return written


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _parse_param(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as YAML (``3`` is an int, ``a/b`` a string)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ChapterError(f"--param must look like NAME=VALUE, got {text!r}")
    try:
        return key, yaml.safe_load(value) if value else ""
    except yaml.YAMLError as exc:
        raise ChapterError(f"--param {key}: cannot read {value!r} ({type(exc).__name__})") from exc


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m rlcomp.chapters",
                     description="Execute the book's chapters with papermill.")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="execute one chapter into a notebook")
    run.add_argument("name", help="chapter name, e.g. 00-setup (a file notebooks/NAME.py)")
    run.add_argument("--profile", choices=PROFILES, default="full",
                     help="smoke (CI: tiny budgets) or full (the book); default full")
    run.add_argument("--out", help="notebook to write (default book/NAME.ipynb)")
    run.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                     help="another chapter parameter, e.g. -p checkpoint_dir=/tmp/ckpts")
    base = sub.add_parser("baseline", help="re-execute chapters (smoke) into tests/baselines/")
    base.add_argument("names", nargs="*", metavar="NAME", help="chapters (default: all)")
    sub.add_parser("list", help="print the chapter names")
    tag = sub.add_parser("retag", help="set the presentation tags of executed notebooks "
                                       "(code hidden, parameters removed); nothing else changes")
    tag.add_argument("paths", nargs="+", metavar="PATH", help="executed notebooks (.ipynb)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = ["python", "-m", "rlcomp.chapters", *argv]
    prog = "rlcomp.chapters"
    try:
        args = _parser().parse_args(argv)
        if args.action == "list":
            print("\n".join(chapter_names()))
        elif args.action == "retag":
            for path, changed in zip(args.paths, retag(args.paths), strict=True):
                print(f"{'retagged' if changed else 'unchanged'} {path}")
        elif args.action == "baseline":
            for path in refresh_baselines(command=command, names=args.names):
                print(f"wrote {path}")
        else:
            chapter_path(args.name)
            params = dict(_parse_param(p) for p in args.param)
            out = Path(args.out) if args.out else ROOT / "book" / f"{args.name}.ipynb"
            path = run_chapter(args.name, args.profile, out, parameters=params, command=command)
            print(f"wrote {path}")
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except ChapterError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ChapterFailed as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
