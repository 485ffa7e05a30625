"""Property tests: untrusted bytes never raise out of the decoder."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ble.decode import decode_ad, decode_fields
from gateway.ble.eddystone import EDDYSTONE_SERVICE_UUID
from gateway.ble.frames import frame_to_dict


def _structures() -> st.SearchStrategy[bytes]:
    """AD structures that look plausible (right types, random lengths) to reach deep code."""
    body = st.one_of(
        st.binary(max_size=31).map(lambda b: b"\xff\x4c\x00\x02\x15" + b),
        st.binary(max_size=31).map(lambda b: b"\xff\x18\x01\xbe\xac" + b),
        st.binary(max_size=31).map(lambda b: b"\x16\xaa\xfe" + b),
        st.binary(max_size=31),
    )
    return body.map(lambda b: bytes((min(len(b), 255),)) + b)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=62))
def test_random_bytes_never_raise(data: bytes) -> None:
    decoded = decode_ad(data)
    for frame in decoded.frames:
        frame_to_dict(frame)
    if decoded.problem is not None:
        assert decoded.problem.reason
        assert decoded.problem.detail


@settings(max_examples=600, deadline=None)
@given(st.lists(_structures(), max_size=4).map(b"".join), st.integers(0, 8))
def test_plausible_structures_truncated_anywhere_never_raise(data: bytes, cut: int) -> None:
    decoded = decode_ad(data[: max(0, len(data) - cut)])
    assert isinstance(decoded.frames, tuple)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=40), max_size=3),
    st.binary(max_size=40),
)
def test_bleak_fields_never_raise(manufacturer: dict[int, bytes], eddystone: bytes) -> None:
    decoded = decode_fields(manufacturer, {EDDYSTONE_SERVICE_UUID: eddystone})
    assert isinstance(decoded.frames, tuple)
