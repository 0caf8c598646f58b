"""The second path's outcomes other than ACCEPT."""


class Reject(Exception):
    """A claim this path did not establish."""


class Malformed(Reject):
    """Not a valid certificate (as opposed to a claim not established)."""
