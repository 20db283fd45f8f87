"""The command line every benchmark shares: `--help`, and `--quick`.

`--quick` runs the same code paths at tiny sizes, in seconds, so `make bench-quick` (and CI)
sees every script run end to end. Its figures are printed like the full ones, but each line
is marked "[quick]" under a banner saying they are not to be quoted. Sizes given explicitly
on the command line win over the quick ones; without `--quick`, the full sizes are the
defaults.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

MARK = "[quick] "
BANNER = (
    "QUICK MODE (--quick): tiny sizes, same code paths, to check that the script runs. "
    "These figures are NOT to be quoted; run without --quick for the real ones."
)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose description is the module docstring (the figures' definitions)."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def parse(
    parser: argparse.ArgumentParser,
    quick: Mapping[str, Any],
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    """Add `--quick` (whose defaults are `quick`, by destination), parse, mark the output."""
    actions = {action.dest: action for action in parser._actions}
    unknown = set(quick) - set(actions)
    assert not unknown, f"quick sizes for options the parser lacks: {unknown}"
    sizes = " ".join(
        f"{actions[dest].option_strings[-1]} {value}"
        if actions[dest].option_strings
        else f"{dest}={value}"
        for dest, value in quick.items()
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"seconds to run, tiny sizes ({sizes or 'none to change'}), the same code "
        "paths; figures printed but marked [quick], not to be quoted",
    )
    first, _ = parser.parse_known_args(argv)
    if first.quick:
        parser.set_defaults(**quick)
    args = parser.parse_args(argv)
    if args.quick:
        mark_quick()
    return args


def mark_quick() -> None:
    """Every line this process prints from now on starts with MARK, after a banner."""
    if not isinstance(sys.stdout, _Marked):
        sys.stdout = _Marked(sys.stdout)
    print(BANNER, flush=True)


class _Marked:
    """A text stream that starts each line with MARK (and flushes each line: progress
    shows up as it happens when the output goes to a pipe, as under run_all.py)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._fresh = True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._fresh:
                out.append(MARK if piece.strip() else MARK.rstrip())
            out.append(piece)
            self._fresh = piece.endswith("\n")
        self._stream.write("".join(out))
        if "\n" in text:
            self._stream.flush()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
