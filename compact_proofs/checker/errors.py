"""The checker's one error type: a step that could not be established, and why."""


class CheckError(Exception):
    """Raised when a certificate cannot be accepted. `step` names the check that failed."""

    def __init__(self, step: str, reason: str):
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


class InvalidCertificate(CheckError):
    """The file is not a well-formed certificate (exit code 3), as opposed to a false claim."""


class ResourceLimit(CheckError):
    """A size cap or the time limit stopped the check before it decided anything (exit code 4)."""
