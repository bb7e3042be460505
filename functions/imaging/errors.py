"""Rejections: the stable vocabulary shared by the imaging core and the state machine.

Step Functions matches a Lambda failure by the exception's class name (``errorType``), so
the class names below are a public contract: the state machine's Catch lists them, the
DynamoDB record stores them as ``error.code``, and dashboards group by them. Renaming one
is a breaking change.
"""

from __future__ import annotations


class ImageRejected(Exception):
    """An upload that can never become a thumbnail, however often it is retried.

    Rejections are a handled outcome (a REJECTED record), never a failed execution, so
    nothing may retry them.
    """

    @property
    def code(self) -> str:
        return type(self).__name__

    @property
    def message(self) -> str:
        return str(self)


class EmptyObject(ImageRejected):
    """The object has zero bytes."""


class UnsupportedFormat(ImageRejected):
    """The bytes are not one of the accepted raster formats (whatever the name says)."""


class CorruptImage(ImageRejected):
    """The bytes claim an accepted format but cannot be decoded."""


class TooLarge(ImageRejected):
    """The object is bigger than the configured byte limit."""


class TooManyPixels(ImageRejected):
    """The header declares more pixels than the configured limit (decompression bombs)."""


REJECTION_CODES: tuple[str, ...] = tuple(
    cls.__name__ for cls in (EmptyObject, UnsupportedFormat, CorruptImage, TooLarge, TooManyPixels)
)
