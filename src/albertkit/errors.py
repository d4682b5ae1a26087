"""The one exception type for user mistakes: the CLI prints it as one line and exits 2."""


class UserError(Exception):
    """A mistake in the user's input (bad file, flag, label): shown as one line, never a traceback."""

    def __init__(self, message: str, path: object | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
