"""Why discovery could not run, with the exit code the command returns."""

from __future__ import annotations


class DiscoverError(Exception):
    """Bad arguments (a URL or root node that is not one): exit code 2."""

    exit_code = 2


class Unreachable(DiscoverError):
    """A server or broker that does not answer, refuses or fails a request: exit code 1."""

    exit_code = 1
