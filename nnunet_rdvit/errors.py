"""The one exception type the command line turns into a clear message and a non-zero exit."""


class UserError(Exception):
    """A problem the user can fix (bad argument, missing file, bad data, missing variable).

    The message must name the problem and the fix; the CLI prints it without a traceback.
    """
