"""The one exception type the command line turns into a clear message and a non-zero exit."""


class UserError(Exception):
    """A problem the user can fix (bad argument, missing file, bad data, missing variable).

    The message must name the problem and the fix; the CLI prints it without a traceback.
    """


def first_sentence(error: BaseException) -> str:
    """A library exception in a few words for a one-line message: its type and the first sentence of its text
    (torch's and nibabel's messages run over several lines and paragraphs of advice)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0].split('. ')[0]}" if text else type(error).__name__
