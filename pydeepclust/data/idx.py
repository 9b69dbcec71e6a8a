"""Reader for IDX files (the MNIST / Fashion-MNIST format), gzipped or not.

An IDX file is a big-endian header -- two zero bytes, a type code, the number of
dimensions, then one uint32 per dimension -- followed by the values in C order.
Gzip is recognised by its magic bytes, not by the file name.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["IDX_DTYPES", "read_idx"]

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"read_idx: {path} looks gzipped but cannot be decompressed: {exc}")
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file into a numpy array of native byte order.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a bad
    magic number, an unknown type code, or a size that disagrees with the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_idx: no such file: {path}")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"read_idx: {path} is too short ({len(raw)} bytes) to be an IDX file")
    zero, type_code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or type_code not in IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"read_idx: {path} has magic number 0x{raw[:4].hex()}, which is not IDX "
            "(expected 0x0000TTNN with type code TT in "
            f"{{{', '.join(f'{c:02x}' for c in IDX_DTYPES)}}} and NN >= 1 dimensions)"
        )
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"read_idx: {path} ends inside its header ({ndim} dimensions declared)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[type_code]
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"read_idx: {path} has {len(raw)} bytes but its header (shape {shape}, {dtype.name}) "
            f"implies {expected}; the file is truncated or corrupt"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))

