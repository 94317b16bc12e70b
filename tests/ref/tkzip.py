"""tkzip - the members of a zip as torch.save writes it, the same zip as
torch 2's torch.save writes it without CRC-32s, and the zip re-packed with
compression, for the tests' reference scripts (make_bad_checkpoints.py,
make_checkpoints.py, make_fuzz_seeds.py, torch2_shim/)."""
import io
import struct
import zipfile


def zip_members(b):
    """(header offset, data offset, data size, ZipInfo) of each member."""
    for i in zipfile.ZipFile(io.BytesIO(b)).infolist():
        n, m = struct.unpack("<HH", b[i.header_offset + 26:i.header_offset + 30])
        yield i.header_offset, i.header_offset + 30 + n + m, i.compress_size, i


def without_crcs(b):
    """A zip as torch.save writes it under
    torch.serialization.set_crc32_options(False): every CRC-32 0, in the
    local headers, the data descriptors after the data (torch.save writes
    them) and the central directory.  torch.load reads it."""
    b = bytearray(b)
    for h, d, size, i in zip_members(bytes(b)):
        b[h + 14:h + 18] = bytes(4)
        if i.flag_bits & 8:
            e = d + size + (4 if b[d + size:d + size + 4] == b"PK\7\x08" else 0)
            b[e:e + 4] = bytes(4)
    p = 0
    while (p := b.find(b"PK\1\2", p)) >= 0:
        b[p + 16:p + 20] = bytes(4)
        p += 4
    return bytes(b)


def repack_deflated(src, dst):
    """The zip src re-packed as dst with compression (zipfile.ZIP_DEFLATED,
    as zip -r would): torch.load reads it too."""
    with zipfile.ZipFile(src) as i, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as o:
        for m in i.infolist():
            o.writestr(m.filename, i.read(m.filename))
