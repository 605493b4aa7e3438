"""A Hessian 2.0 encoder and decoder for the subset Dubbo calls use in the tests: null,
booleans, 32-bit ints, 64-bit longs, strings and maps (Hessian 2.0 Serialization Protocol,
sections 4.x: the compact forms included).

Strings are counted as Java counts them: in UTF-16 code units, each written in UTF-8 (a
character beyond the BMP is two surrogates of three bytes each, as Java's encoder writes them).
"""

import struct

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
CHUNK = 0xFFFF  # the longest string chunk, in UTF-16 code units


class Long(int):
    """A value the encoder writes as a Hessian long (Java ``long``), not an int."""


class HessianError(ValueError):
    """Bytes that are not Hessian 2.0 of the subset this module reads."""


def _units(text: str) -> list[int]:
    raw = text.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def _utf8_units(units: list[int]) -> bytes:
    return b"".join(chr(unit).encode("utf-8", "surrogatepass") for unit in units)


def _encode_int(value: int) -> bytes:
    if -0x10 <= value <= 0x2F:
        return bytes([0x90 + value])
    if -0x800 <= value <= 0x7FF:
        return bytes([0xC8 + (value >> 8), value & 0xFF])
    if -0x40000 <= value <= 0x3FFFF:
        return bytes([0xD4 + (value >> 16), (value >> 8) & 0xFF, value & 0xFF])
    return b"I" + struct.pack(">i", value)


def _encode_long(value: int) -> bytes:
    if -0x08 <= value <= 0x0F:
        return bytes([0xE0 + value])
    if -0x800 <= value <= 0x7FF:
        return bytes([0xF8 + (value >> 8), value & 0xFF])
    if -0x40000 <= value <= 0x3FFFF:
        return bytes([0x3C + (value >> 16), (value >> 8) & 0xFF, value & 0xFF])
    if INT_MIN <= value <= INT_MAX:
        return b"\x59" + struct.pack(">i", value)
    return b"L" + struct.pack(">q", value)


def _encode_string(text: str) -> bytes:
    units = _units(text)
    out = bytearray()
    while len(units) > CHUNK:  # non-final chunks
        out += b"R" + struct.pack(">H", CHUNK) + _utf8_units(units[:CHUNK])
        units = units[CHUNK:]
    length = len(units)
    if length <= 31:
        out += bytes([length])
    elif length <= 1023:
        out += bytes([0x30 + (length >> 8), length & 0xFF])
    else:
        out += b"S" + struct.pack(">H", length)
    return bytes(out + _utf8_units(units))


def encode(value) -> bytes:
    """One value: None, bool, int (``Long`` for a long), str, or a dict of those (a map)."""
    if value is None:
        return b"N"
    if value is True:
        return b"T"
    if value is False:
        return b"F"
    if isinstance(value, Long):
        if not LONG_MIN <= value <= LONG_MAX:
            raise OverflowError(f"{int(value)} does not fit a Hessian long")
        return _encode_long(int(value))
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise OverflowError(f"{value} does not fit a Hessian int (use Long)")
        return _encode_int(value)
    if isinstance(value, str):
        return _encode_string(value)
    if isinstance(value, dict):
        return b"H" + b"".join(encode(k) + encode(v) for k, v in value.items()) + b"Z"
    raise TypeError(f"cannot encode {type(value).__name__} as Hessian 2.0 here")


def encode_all(*values) -> bytes:
    return b"".join(encode(value) for value in values)


class Decoder:
    """Reads values one after the other from ``data``; ``offset`` is where the next one starts."""

    def __init__(self, data: bytes, offset: int = 0):
        self.data = data
        self.offset = offset

    def at_end(self) -> bool:
        return self.offset >= len(self.data)

    def _take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise HessianError(f"truncated: {count} bytes wanted at offset {self.offset}")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def _byte(self) -> int:
        return self._take(1)[0]

    def _units(self, count: int) -> list[int]:
        """``count`` UTF-16 code units written as UTF-8 (1 to 3 bytes each)."""
        units = []
        for _ in range(count):
            first = self._byte()
            if first < 0x80:
                units.append(first)
            elif 0xC0 <= first < 0xE0:
                units.append(((first & 0x1F) << 6) | (self._continuation()))
            elif 0xE0 <= first < 0xF0:
                high = self._continuation()
                units.append(((first & 0x0F) << 12) | (high << 6) | self._continuation())
            else:
                raise HessianError(f"byte {first:#x} starts no UTF-8 sequence of one code unit")
        return units

    def _continuation(self) -> int:
        byte = self._byte()
        if byte & 0xC0 != 0x80:
            raise HessianError(f"byte {byte:#x} is no UTF-8 continuation byte")
        return byte & 0x3F

    def _string(self, code: int) -> str:
        units: list[int] = []
        while True:
            if code <= 0x1F:
                units += self._units(code)
                break
            if 0x30 <= code <= 0x33:
                units += self._units(((code - 0x30) << 8) | self._byte())
                break
            length = struct.unpack(">H", self._take(2))[0]
            units += self._units(length)
            if code == 0x53:  # 'S': the final chunk
                break
            code = self._byte()  # after an 'R' chunk: the next chunk
            if not (code <= 0x1F or 0x30 <= code <= 0x33 or code in (0x52, 0x53)):
                raise HessianError(f"byte {code:#x} after a string chunk is no string chunk")
        raw = b"".join(unit.to_bytes(2, "big") for unit in units)
        return raw.decode("utf-16-be", "surrogatepass")

    def read(self):
        code = self._byte()
        if code == 0x4E:  # N
            return None
        if code == 0x54:  # T
            return True
        if code == 0x46:  # F
            return False
        if 0x80 <= code <= 0xBF:
            return code - 0x90
        if 0xC0 <= code <= 0xCF:
            return ((code - 0xC8) << 8) | self._byte()
        if 0xD0 <= code <= 0xD7:
            return ((code - 0xD4) << 16) | int.from_bytes(self._take(2), "big")
        if code == 0x49:  # I
            return struct.unpack(">i", self._take(4))[0]
        if 0xD8 <= code <= 0xEF:
            return Long(code - 0xE0)
        if 0xF0 <= code <= 0xFF:
            return Long(((code - 0xF8) << 8) | self._byte())
        if 0x38 <= code <= 0x3F:
            return Long(((code - 0x3C) << 16) | int.from_bytes(self._take(2), "big"))
        if code == 0x59:
            return Long(struct.unpack(">i", self._take(4))[0])
        if code == 0x4C:  # L
            return Long(struct.unpack(">q", self._take(8))[0])
        if code <= 0x1F or 0x30 <= code <= 0x33 or code in (0x52, 0x53):
            return self._string(code)
        if code in (0x48, 0x4D):  # H: untyped map; M: typed map (its type is read and dropped)
            if code == 0x4D:
                self.read()
            result = {}
            while self.data[self.offset : self.offset + 1] != b"Z":
                if self.at_end():
                    raise HessianError("truncated: a map without its end ('Z')")
                key = self.read()
                result[key] = self.read()
            self.offset += 1
            return result
        raise HessianError(f"byte {code:#x} at offset {self.offset - 1} is not in this subset")


def decode(data: bytes):
    """The one value ``data`` holds (every byte must be used)."""
    decoder = Decoder(data)
    value = decoder.read()
    if not decoder.at_end():
        raise HessianError(f"{len(data) - decoder.offset} bytes after the value")
    return value


def decode_all(data: bytes) -> list:
    decoder = Decoder(data)
    values = []
    while not decoder.at_end():
        values.append(decoder.read())
    return values
