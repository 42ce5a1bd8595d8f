"""The one exception type the command line turns into a clear message and a non-zero exit."""

import sys
from typing import Callable


class UserError(Exception):
    """A problem the user can fix (bad argument, missing file, bad data, missing variable).

    The message must name the problem and the fix; the CLI prints it without a traceback.
    """


def first_sentence(error: BaseException) -> str:
    """A library exception in a few words for a one-line message: its type and the first sentence of its text
    (torch's and nibabel's messages run over several lines and paragraphs of advice)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0].split('. ')[0]}" if text else type(error).__name__


def exit_status(prog: str, run: Callable[[], int | None], interrupted: str = "interrupted") -> int:
    """``run()``'s exit status, for a command's ``main``: a :class:`UserError` becomes one line
    ``<prog>: error: <message>`` on stderr and status 2, Ctrl-C one line ``<prog>: <interrupted>`` and 130."""
    try:
        return int(run() or 0)
    except UserError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
