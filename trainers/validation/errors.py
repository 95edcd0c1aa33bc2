"""Why an archive is refused before any dataset check runs. Each error names the member it is about (or none,
for the archive as a whole) so a report can point at it."""

from __future__ import annotations


class ArchiveRefused(Exception):
    """The archive cannot be extracted safely or at all; `reason` says why in words a user can act on."""

    def __init__(self, reason: str, member: str | None = None) -> None:
        super().__init__(f"{member}: {reason}" if member else reason)
        self.reason = reason
        self.member = member


class UnsafeArchive(ArchiveRefused):
    """A member would escape the extraction folder, is a link or device, or the archive exceeds a limit."""


class UnsupportedArchive(ArchiveRefused):
    """Not a zip or tar archive, not the kind its name says, or unreadable."""
