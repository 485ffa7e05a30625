"""Why an advertisement yielded no usable frame.

``reason`` is a short stable token (a metrics label); ``detail`` is the
sentence a person reads.
"""

from __future__ import annotations

from typing import NamedTuple


class Malformed(NamedTuple):
    reason: str
    detail: str
