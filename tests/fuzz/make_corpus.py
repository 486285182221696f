#!/usr/bin/env python3
"""Write the seed corpora for the .npy and CSV fuzz harnesses (tests/fuzz/corpus/{npy,csv}/).

numpy is not needed: the .npy files are assembled byte by byte following numpy's format
description (magic, version, little-endian header length, dict text padded to 64, data).
Run from anywhere; it rewrites the seed files in place."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def npy(dict_text, data=b"", major=1, pad=True):
    pre = 10 if major == 1 else 12
    header = dict_text.encode("utf-8")
    if pad:
        total = pre + len(header) + 1
        total += (64 - total % 64) % 64
        header += b" " * (total - pre - len(header) - 1) + b"\n"
    size = struct.pack("<H" if major == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([major, 0]) + size + header + data


def d(descr, shape, fortran=False):
    return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)


def f8(*xs, big=False):
    return struct.pack((">" if big else "<") + "%dd" % len(xs), *xs)


def f4(*xs, big=False):
    return struct.pack((">" if big else "<") + "%df" % len(xs), *xs)


NPY = {
    "f8_3x2.npy": npy(d("<f8", "(3, 2)"), f8(0, 0.25, 0.5, 0.75, 1, 1.25)),
    "f4_1d.npy": npy(d("<f4", "(4,)"), f4(1, -2, 3.5, 1e-3)),
    "f8_scalar.npy": npy(d("<f8", "()"), f8(3.14)),
    "f8_empty_0x3.npy": npy(d("<f8", "(0, 3)")),
    "be_f8_2.npy": npy(d(">f8", "(2,)"), f8(1.5, -2, big=True)),
    "be_f4_fortran_2x3.npy": npy(d(">f4", "(2, 3)", True), f4(1, 4, 2, 5, 3, 6, big=True)),
    "fortran_f8_2x2x2.npy": npy(d("<f8", "(2, 2, 2)", True), f8(*range(8))),
    "v2_f8.npy": npy(d("<f8", "(2,)"), f8(7, 8), major=2),
    "v3_f4.npy": npy(d("<f4", "(1, 1)"), f4(9), major=3),
    "compact_unpadded.npy": npy('{"shape":(2,1),"descr":"<f8","fortran_order":False}',
                                f8(1, 2), pad=False),
    "py2_long_shape.npy": npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2L, 1L), }",
                              f8(1, 2)),
    "eight_dims.npy": npy(d("<f4", "(1, 1, 1, 1, 1, 1, 1, 2)"), f4(1, 2)),
    "bad_dtype_i4.npy": npy(d("<i4", "(2,)"), struct.pack("<2i", 1, 2)),
    "bad_truncated.npy": npy(d("<f8", "(3, 2)"), f8(1, 2, 3, 4, 5)),
    "bad_magic.npy": b"\x93NUMPZ\x01\x00" + npy(d("<f8", "(1,)"), f8(1))[8:],
    "bad_version.npy": b"\x93NUMPY\x04\x00" + npy(d("<f8", "(1,)"), f8(1))[8:],
    "bad_shape_overflow.npy": npy(d("<f8", "(4294967296, 4294967296, 2)")),
    "bad_shape_int.npy": npy(d("<f8", "(2)"), f8(1, 2)),
}

CSV = {
    "basic.csv": b"1,2,3\n4,5,6\n",
    "header.csv": b"x,y\n0.5,-1\n2e3,4\n",
    "crlf.csv": b"a,b\r\n1,2\r\n3,4\r\n",
    "comments_blank.csv": b"# made by hand\n\n1, 2\n  # note\n\n3, 4\n",
    "no_final_newline.csv": b"1.5,2.5\n3.5,4.5",
    "single.csv": b"42",
    "bom.csv": b"\xef\xbb\xbfp,q\n1,2\n",
    "tabs_spaces.csv": b" 1 ,\t2\t\n\t3,  4 \n",
    "numbers.csv": b"+1,-0,0x1p-3,1e-308,4.9406564584124654e-324,-1.7976931348623157e308\n",
    "long_field.csv": b"0." + b"0" * 100 + b"1,2\n",
    "bad_ragged.csv": b"1,2,3\n4,5\n",
    "bad_nan.csv": b"1,nan\ninf,2\n",
    "bad_text.csv": b"1,2\n3,four\n",
    "bad_empty_field.csv": b"1,,2\n",
    "bad_overflow.csv": b"1e999,1\n",
    "bad_semicolons.csv": b"1;2\n3;4\n",
    "savetxt.csv": b"# x y\n1.000000000000000000e+00 -2.500000000000000000e-01\n"
                   b"3.000000000000000000e+00 4.000000000000000000e+00\n",
    "whitespace_tabs.csv": b"a\tb\r\n 1\t\t2 \r\n3   4",
    "bad_whitespace_ragged.csv": b"1 2 3\n4 5\n",
}


def main():
    for sub, files in (("npy", NPY), ("csv", CSV)):
        out = os.path.join(HERE, "corpus", sub)
        os.makedirs(out, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
        print("%s: %d seeds in %s" % (sub, len(files), out))


if __name__ == "__main__":
    main()
