"""The tests' Hessian 2.0 codec (tests/provisioning/hessian2.py): the byte vectors of the
Hessian 2.0 Serialization Protocol's examples, the boundaries of each compact form, and
round trips of generated values (Hypothesis)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.provisioning import hessian2
from tests.provisioning.dubbo_server import _count_types, parse_request, request_body
from tests.provisioning.hessian2 import Long


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        # 4.1 null, 4.2 boolean
        (None, b"N"),
        (True, b"T"),
        (False, b"F"),
        # 4.6 int: compact single octet, two octets, three octets, and 'I'
        (0, b"\x90"),
        (-16, b"\x80"),
        (47, b"\xbf"),
        (48, b"\xc8\x30"),
        (-17, b"\xc7\xef"),
        (-2048, b"\xc0\x00"),
        (-256, b"\xc7\x00"),
        (2047, b"\xcf\xff"),
        (2048, b"\xd4\x08\x00"),
        (-262144, b"\xd0\x00\x00"),
        (262143, b"\xd7\xff\xff"),
        (262144, b"I\x00\x04\x00\x00"),
        (300, b"\xc9\x2c"),
        (-(2**31), b"I\x80\x00\x00\x00"),
        # 4.7 long
        (Long(0), b"\xe0"),
        (Long(-8), b"\xd8"),
        (Long(15), b"\xef"),
        (Long(-2048), b"\xf0\x00"),
        (Long(2047), b"\xff\xff"),
        (Long(-262144), b"\x38\x00\x00"),
        (Long(262143), b"\x3f\xff\xff"),
        (Long(300), b"\xf9\x2c"),
        (Long(2**31 - 1), b"\x59\x7f\xff\xff\xff"),
        (Long(2**31), b"L\x00\x00\x00\x00\x80\x00\x00\x00"),
        # 4.12 string: "" , "hello", "\u00c3" (two UTF-8 bytes, one character)
        ("", b"\x00"),
        ("hello", b"\x05hello"),
        ("\u00c3", b"\x01\xc3\x83"),
        ("a" * 31, b"\x1f" + b"a" * 31),
        ("a" * 32, b"\x30\x20" + b"a" * 32),
        ("a" * 1023, b"\x33\xff" + b"a" * 1023),
        ("a" * 1024, b"S\x04\x00" + b"a" * 1024),
        # A character beyond the BMP: two UTF-16 units, each three bytes (as Java writes it)
        ("\U0001f600", b"\x02\xed\xa0\xbd\xed\xb8\x80"),
        # 4.10 map: the specification's example (an untyped map of ints to strings)
        ({1: "fee", 16: "fie", 256: "foe"}, b"H\x91\x03fee\xa0\x03fie\xc9\x00\x03foeZ"),
        ({}, b"HZ"),
    ],
)
def test_fixed_vectors(value, encoded):
    assert hessian2.encode(value) == encoded
    decoded = hessian2.decode(encoded)
    assert decoded == value
    assert type(decoded) is type(value)


def test_a_string_longer_than_one_chunk_is_split():
    text = "x" * (0xFFFF + 5)
    encoded = hessian2.encode(text)
    assert encoded[:3] == b"R\xff\xff"
    assert encoded[3 + 0xFFFF :][:1] == b"\x05"
    assert hessian2.decode(encoded) == text


def test_decoding_a_typed_map_and_refusing_what_it_does_not_read():
    assert hessian2.decode(b"M\x08java.Map\x01a\x91Z") == {"a": 1}
    with pytest.raises(hessian2.HessianError):
        hessian2.decode(b"H\x01a")  # no end
    with pytest.raises(hessian2.HessianError):
        hessian2.decode(b"\x05hel")  # truncated
    with pytest.raises(hessian2.HessianError):
        hessian2.decode(b"O\x90")  # objects are not in this subset
    with pytest.raises(OverflowError):
        hessian2.encode(2**31)


def _typed(value):
    """Comparable with types kept (1, True and Long(1) are different values in Hessian)."""
    if isinstance(value, dict):
        return ("map", sorted((repr(_typed(k)), _typed(v)) for k, v in value.items()))
    return (type(value).__name__, value)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=hessian2.INT_MIN, max_value=hessian2.INT_MAX)
    | st.integers(min_value=hessian2.LONG_MIN, max_value=hessian2.LONG_MAX).map(Long)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.dictionaries(st.text(max_size=8) | st.integers(-100, 100), inner, max_size=5),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip(value):
    assert _typed(hessian2.decode(hessian2.encode(value))) == _typed(value)


@settings(max_examples=100, deadline=None)
@given(st.lists(values, max_size=6))
def test_sequences_decode_one_after_the_other(items):
    decoded = hessian2.decode_all(hessian2.encode_all(*items))
    assert [_typed(v) for v in decoded] == [_typed(v) for v in items]


@settings(max_examples=100, deadline=None)
@given(
    st.text(min_size=1, max_size=40),
    st.text(min_size=1, max_size=20),
    st.lists(st.text() | st.integers(-(2**31), 2**31 - 1), max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=4),
)
def test_a_dubbo_request_body_round_trips(service, method, args, attachments):
    call = parse_request(request_body(service, method, args, "1.0.0", attachments))
    assert (call.service, call.method, call.version) == (service, method, "1.0.0")
    assert call.args == args
    assert call.attachments == {"path": service, "interface": service, "version": "1.0.0",
                                **attachments}  # fmt: skip


def test_parameter_descriptors_are_counted_as_the_jvm_does():
    assert _count_types("") == 0
    assert _count_types("Ljava/lang/String;I") == 2
    assert _count_types("[Ljava/lang/String;[[IJZ") == 4
