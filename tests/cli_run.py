"""Running the command line in-process, as a user would from a shell."""

from __future__ import annotations

from codeduel.cli import main


def exit_code(argv: list[str]) -> int:
    """`codeduel ARGV`'s exit status (0, or what it exited with)."""
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
