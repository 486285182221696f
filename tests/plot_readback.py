#!/usr/bin/env python3
"""Read back what a figure of kat shows and compare it with the CSV rows it claims to show.

Each figure of `kat reproduce` and `kat sweep --plot` is drawn by one gnuplot script, F.gp,
kept beside F.png. Run with tablefile set, the same script writes the points it plots (gnuplot's
`set table`): every curve with its title, each point marked i (drawn), o (outside the axis
range, not drawn) or u (undefined, not drawn). This program runs the script that way and
checks, curve by curve and in order, that the drawn points are exactly the CSV rows the figure
claims (the claims are written here, from docs/figures.md, not taken from kat's code).

    plot_readback.py report DIR         every figure in a `kat reproduce` output directory
    plot_readback.py sweep FILE.gp CSV  a `kat sweep --plot` figure against its --out CSV

Exit status 0 when every figure shows its rows, 1 otherwise (each difference is printed).
"""
import csv
import math
import os
import re
import subprocess
import sys
import tempfile

REL = 1e-5   # the table prints 6 significant digits


def table(gp):
    """The curves a script plots: a list of (title, [(x, y, type)])."""
    with tempfile.TemporaryDirectory() as tmp:
        tab = os.path.join(tmp, "points.tab")
        subprocess.run(["gnuplot", "-e", "tablefile='%s'" % tab, os.path.basename(gp)],
                       cwd=os.path.dirname(os.path.abspath(gp)), check=True)
        curves = []
        with open(tab) as f:
            for line in f:
                line = line.strip()
                if line.startswith("# Curve title:"):
                    title = line[len("# Curve title:"):].strip()
                    curves[-1][0] = title[1:-1] if title.startswith('"') else title
                elif line.startswith("# Curve "):
                    curves.append(["", []])
                elif line and not line.startswith("#"):
                    x, y, kind = line.split()
                    curves[-1][1].append((float(x), float(y), kind))
        return [(t, p) for t, p in curves]


def data(title, points):
    return ("data", title, points)


def func(title, f):
    """A curve that is a function of x, not CSV rows; f(x) is its value, None: no point drawn."""
    return ("func", title, f)


def close(a, b):
    return abs(a - b) <= REL * max(abs(a), abs(b)) + 1e-300


def compare(name, got, want):
    errors = []
    if [t for t, _ in got] != [w[1] for w in want]:
        errors.append("%s: curves %s, expected %s" % (name, [t for t, _ in got],
                                                      [w[1] for w in want]))
        return errors
    for (title, pts), (kind, _, expect) in zip(got, want):
        hidden = [(x, y) for x, y, k in pts if k == "o"]
        if hidden:
            errors.append("%s: '%s': points outside the axis range, not drawn: %s"
                          % (name, title, hidden))
        drawn = [(x, y) for x, y, k in pts if k == "i"]
        if kind == "data":
            same = len(drawn) == len(expect) and all(
                close(x, ex) and close(y, ey) for (x, y), (ex, ey) in zip(drawn, expect))
            if not same:
                errors.append("%s: '%s' draws %s, the CSV rows are %s"
                              % (name, title, drawn, expect))
        else:
            for x, y in drawn:
                want_y = expect(x)
                if want_y is None or not close(y, want_y):
                    errors.append("%s: '%s' draws (%g, %g), expected %s"
                                  % (name, title, x, y, want_y))
                    break
            if expect(0.0) is not None and not drawn:
                errors.append("%s: '%s' draws nothing" % (name, title))
    return errors


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def num(s):
    return float(s) if s != "" else None


def column(header, rows, xcol, ycol, keep=lambda r: True, ymap=lambda y: y):
    """(x, ymap(y)) of the rows that keep() accepts and have both values."""
    xi, yi = header.index(xcol), header.index(ycol)
    out = []
    for r in rows:
        x, y = num(r[xi]), num(r[yi])
        if x is not None and y is not None and keep(r):
            out.append((x, ymap(y)))
    return out


# ---- the claims of the report's figures (docs/figures.md) ------------------------------------

def claim_rank_vs_n(d, header, rows):
    """One curve per function: its rank against n for the rows with this d; then, per function
    with a predicted rank, the predicted ranks of those rows; then y = n."""
    fns = [h[len("rank "):] for h in header if h.startswith("rank ")]

    def mine(r):
        return float(r[0]) == d
    want = [data(f, column(header, rows, "n", "rank " + f, mine)) for f in fns]
    for f in fns:
        pred = column(header, rows, "n", "predicted " + f, mine)
        if pred:
            want.append(data(f + " predicted", pred))
    return want + [func("n", lambda x: x)]


def claim_eps_rank(header, rows, got):
    n = {num(r[header.index("n")]) for r in rows}
    want = [data("spectral eps-rank", column(header, rows, "B", "eps_rank_spectral")),
            data("Frobenius eps-rank", column(header, rows, "B", "eps_rank_frobenius")),
            data("n = %d (full rank)" % min(n), column(header, rows, "B", "n"))]
    if len(n) != 1:
        want.append(func("one n in every row, not %s" % sorted(n), lambda x: None))
    # The levels C(d+g, g), g = 1, 2, ... in order, each named with its g and its value.
    for g, (title, _) in enumerate(got[3:], start=1):
        m = re.fullmatch(r"g = (\d+): C\((\d+)\+(\d+), (\d+)\) = (\d+)", title)
        if not m or int(m[1]) != g or int(m[3]) != g or int(m[4]) != g or \
                int(m[5]) != math.comb(int(m[2]) + g, g):
            want.append(func("g = %d: C(d+%d, %d) = %s" % (g, g, g, "C(d+g, g)"),
                             lambda x: None))
        else:
            want.append(func(title, lambda x, v=int(m[5]): v))
    return want


def claim_cube_spectra(header, rows, zero_tol=1e-12, dodge=0.2):
    """Per kernel: |lambda_j| / |lambda_0| of the positive and of the negative eigenvalues,
    counted with their multiplicities in the titles; zeros named in the key, not drawn. The
    k-th of the three kernels is drawn at j + (k - 1) * dodge, so that equal values (every
    lambda_0 / |lambda_0| is 1) do not hide each other."""
    mult = [float(r[header.index("multiplicity")]) for r in rows]
    total = int(sum(mult))
    want = []
    kernels = [h for h in header if h.endswith(" normalised")]
    for k, h in enumerate(kernels):
        f, c = h[:-len(" normalised")], header.index(h)
        dx = (k - (len(kernels) - 1) / 2) * dodge
        vals = [float(r[c]) for r in rows]
        pos = int(sum(m for m, v in zip(mult, vals) if v > zero_tol))
        neg = int(sum(m for m, v in zip(mult, vals) if v < -zero_tol))
        zero = total - pos - neg
        pos_pts = column(header, rows, "j", h, lambda r: float(r[c]) > zero_tol)
        neg_pts = column(header, rows, "j", h, lambda r: float(r[c]) < -zero_tol, lambda y: -y)
        want.append(data("%s: lambda > 0 (%d of %d)" % (f, pos, total),
                         [(x + dx, y) for x, y in pos_pts]))
        want.append(data("%s: lambda < 0 (%d of %d)" % (f, neg, total),
                         [(x + dx, y) for x, y in neg_pts]))
        if zero:
            want.append(func("%s: lambda = 0 (%d of %d, not drawn)" % (f, zero, total),
                             lambda x: None))
    return want


def claim_sparse(header, rows):
    return [data(h, column(header, rows, "N", h)) for h in header[1:]] + \
        [func("1 (no speed-up)", lambda x: 1.0)]


LINEAR_TITLES = {"flash D=32": "flash_ms_d32", "Taylor-2 D=32": "taylor2_ms_d32",
                 "flash D=64": "flash_ms_d64", "Taylor-2 D=64": "taylor2_ms_d64"}


def claim_linear(header, rows):
    return [data(t, column(header, rows, "N", c)) for t, c in LINEAR_TITLES.items()]


# The conditions each figure's title states, so that the figure is read right on its own: the
# sizes, the distribution of the points and the tolerance, or the machine's threads for a timing.
TITLE_WORDS = [
    (r"rank_vs_n_d(\d+)\.png", lambda m: ["rank of f(QK^T)", "d = %s:" % m[1],
                                          "N(0, 1/d) entries", "seed", "tolerance"]),
    (r"eps_rank_vs_bound\.png", lambda m: ["eps-rank of exp(QK^T/d)", "uniform on [-B, B]^d",
                                          "d = ", "n = ", "eps = "]),
    (r"cube_spectra\.png", lambda m: ["{0,1}^10", "filled up: lambda > 0",
                                     "open down: lambda < 0"]),
    (r"sparse_speedups\.png", lambda m: ["causal", "fwd + bwd", "B = 1", "H = ", "D = ", "fp32",
                                        " threads"]),
    (r"linear_crossover\.png", lambda m: ["Taylor-2", "dense flash", "causal forward", "B = 1",
                                         "H = ", "fp32", " threads"]),
]
SWEEP_WORDS = [(r".*", lambda m: ["kat sweep: numerical rank of f(s * ", "Q, K: n x d, ", "seed",
                                  "tolerance", " rank"])]


def check_labels(gp, png, title_words=TITLE_WORDS):
    """The figure's title names its conditions and both axes have a label."""
    with open(gp) as f:
        text = f.read()
    errors = []
    for axis in ("xlabel", "ylabel"):
        if not re.search(r"^set %s '[^']+'" % axis, text, re.M):
            errors.append("%s: no %s" % (png, axis))
    title = re.search(r"^set title (.*)$", text, re.M)
    for pattern, words in title_words:
        m = re.fullmatch(pattern, png)
        if m:
            missing = [w for w in words(m) if not title or w not in title[1]]
            if missing:
                errors.append("%s: the title %s does not say %s"
                              % (png, title[1] if title else "(none)", missing))
            break
    return errors


def report_claims(directory, png, got):
    """The curves figure png of a report claims to show, or None for an unknown figure."""
    def csv_of(name):
        return read_csv(os.path.join(directory, name))
    m = re.fullmatch(r"rank_vs_n_d(\d+)\.png", png)
    if m:
        return claim_rank_vs_n(int(m[1]), *csv_of("rank_vs_n.csv"))
    if png == "eps_rank_vs_bound.png":
        return claim_eps_rank(*csv_of("eps_rank_vs_bound.csv"), got)
    if png == "cube_spectra.png":
        return claim_cube_spectra(*csv_of("cube_spectra.csv"))
    if png == "sparse_speedups.png":
        return claim_sparse(*csv_of("sparse_speedups.csv"))
    if png == "linear_crossover.png":
        return claim_linear(*csv_of("linear_crossover.csv"))
    return None


def check_report(directory):
    errors, figures = [], sorted(f for f in os.listdir(directory) if f.endswith(".png"))
    if not figures:
        errors.append("%s: no figures" % directory)
    for png in figures:
        gp = os.path.join(directory, png[:-4] + ".gp")
        if not os.path.exists(gp):
            errors.append("%s: no script %s beside it" % (png, gp))
            continue
        try:
            got = table(gp)
        except subprocess.CalledProcessError:
            errors.append("%s: gnuplot failed on %s" % (png, gp))
            continue
        want = report_claims(directory, png, got)
        if want is None:
            errors.append("%s: a figure without a claim in tests/plot_readback.py" % png)
            continue
        errs = compare(png, got, want) + check_labels(gp, png)
        errors += errs
        if not errs:
            print("ok: %s shows its CSV rows (%d curves)" % (png, len(got)))
    return errors


def check_sweep(gp, path):
    """kat sweep: y = n, then per (f, d, s) in the CSV's order its ranks against n and, where
    the theory predicts one, the predicted rank."""
    header, rows = read_csv(path)
    want, groups = [func("n (full rank)", lambda x: x)], []
    for r in rows:
        key = (r[header.index("f")], r[header.index("d")], r[header.index("scale")])
        if key not in groups:
            groups.append(key)
    for f, d, s in groups:
        def mine(r, key=(f, d, s)):
            return (r[header.index("f")], r[header.index("d")], r[header.index("scale")]) == key
        name = "f = %s, d = %s, s = %g" % (f, d, float(s))
        want.append(data(name, column(header, rows, "n", "rank", mine)))
        pred = column(header, rows, "n", "predicted", mine)
        if pred:
            want.append(data("predicted, " + name, pred))
    errors = compare(os.path.basename(gp), table(gp), want) + \
        check_labels(gp, os.path.basename(gp)[:-3] + ".png", SWEEP_WORDS)
    if not errors:
        print("ok: %s shows the rows of %s" % (os.path.basename(gp), os.path.basename(path)))
    return errors


def main(argv):
    if len(argv) == 3 and argv[1] == "report":
        errors = check_report(argv[2])
    elif len(argv) == 4 and argv[1] == "sweep":
        errors = check_sweep(argv[2], argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for e in errors:
        print("FAIL: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
