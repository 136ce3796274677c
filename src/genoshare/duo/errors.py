"""The one error type of the DUO package."""


class DuoError(ValueError):
    """A consent code, code set or research purpose that cannot be interpreted.

    A ``ValueError`` so that callers validating user input (typer, pydantic, the API) treat it as
    bad input rather than as a server fault.
    """
