#!/usr/bin/env bash
# mpirun -np P kat rank --engine slepc and kat sweep: the same answers as one process, and bad
# input (a process without rows, processes started with other options, a file that only one
# node has) answered by an error from every process, never a hang.
set -u
KAT=$1
MPIRUN=$2
. "$(dirname "$0")/../cli_lib.sh"
MPI=("$MPIRUN" --oversubscribe --allow-run-as-root)
T=60   # seconds before a run counts as hung

# Same rank and leading singular values as the local probe, with P = 1, 2 and 4.
"$KAT" rank --n 300 --d 4 --f '(1+x)^3' --eps 1e-6 --json --sv >"$tmp/local.json"
for p in 1 2 4; do
    timeout $T "${MPI[@]}" -np $p "$KAT" rank --n 300 --d 4 --f '(1+x)^3' --eps 1e-6 \
        --engine slepc --json --sv >"$tmp/p$p.json" 2>"$tmp/p$p.err"
    check "rank --engine slepc -np $p exits 0" 0 test $? -eq 0
    check "rank -np $p agrees with the local dense probe" 0 python3 - "$tmp/local.json" \
        "$tmp/p$p.json" $p <<'PY'
import json, sys
a, b, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
assert a["rank"] == b["rank"] == 35, (a["rank"], b["rank"])
assert a["eps_rank_spectral"] == b["eps_rank_spectral"]
assert b["engine"] == "slepc" and b["processes"] == p and len(b["peak_rss_mib"]) == p
assert b["predicted_rank"] == a["predicted_rank"] == 35
for x, y in zip(a["singular_values"][:35], b["singular_values"][:35]):
    assert abs(x - y) <= 1e-8 * abs(x), (x, y)
PY
done

# One line of output, from process 0.
timeout $T "${MPI[@]}" -np 2 "$KAT" rank --n 64 --d 3 --f 'x' --engine slepc >"$tmp/text" \
    2>&1
check "text output printed once" 0 test "$(grep -c '^rank: ' "$tmp/text")" -eq 1

# Every process reports each refusal, with the same sentence; nothing hangs.
errors_from_all() {   # errors_from_all NAME EXPECTED-RC EXPECTED-LINE -- COMMAND...
    local name=$1 want_rc=$2 line=$3
    shift 4
    timeout $T "$@" >"$tmp/run.out" 2>"$tmp/run.err"
    local rc=$?
    check "$name: exit $want_rc (got $rc, 124 is a hang)" 0 test $rc -eq "$want_rc"
    check "$name: the sentence from both processes" 0 \
        test "$(grep -cxF -- "$line" "$tmp/run.err")" -eq 2
    [ "$(grep -cxF -- "$line" "$tmp/run.err")" -eq 2 ] || cat "$tmp/run.err" >&2
}

errors_from_all "a process without rows" 1 \
    "kat rank: probe: invalid argument: process 1 of 2: kat_mpi_rank_probe: this process holds no rows of Q (n = 1 and m = 1 rows over 2 processes); every process needs at least one row of Q and of K: run on at most 1 processes" \
    -- "${MPI[@]}" -np 2 "$KAT" rank --n 1 --d 3 --engine slepc

errors_from_all "options that differ" 2 \
    "kat rank: process 1 of 2 was started with other arguments than process 0; mpirun must start every process with the same command line" \
    -- "${MPI[@]}" -np 1 "$KAT" rank --n 64 --engine slepc : -np 1 "$KAT" rank --n 65 --engine slepc

# A file that only process 0's node has: process 1 runs in a directory without it.
mkdir -p "$tmp/node0" "$tmp/node1"
python3 - "$tmp/node0/q.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(20):
        f.write(",".join(str((i * 7 + j) % 5 - 2) for j in range(3)) + "\n")
PY
errors_from_all "a file one process cannot read" 1 \
    "kat rank: q.csv: input/output error: process 1 of 2: cannot open 'q.csv': No such file or directory" \
    -- "${MPI[@]}" -np 1 --wdir "$tmp/node0" "$KAT" rank --q q.csv --engine slepc : \
       -np 1 --wdir "$tmp/node1" "$KAT" rank --q q.csv --engine slepc

# The same file name with other content on the second node.
sed 's/^2,/1,/' "$tmp/node0/q.csv" >"$tmp/node1/q.csv"
errors_from_all "a file with other content" 1 \
    "kat rank: probe: invalid argument: the points Q differs between processes: process 1 of 2 holds other values (or another shape) than process 0 (a file with other content on that node?)" \
    -- "${MPI[@]}" -np 1 --wdir "$tmp/node0" "$KAT" rank --q q.csv --engine slepc : \
       -np 1 --wdir "$tmp/node1" "$KAT" rank --q q.csv --engine slepc

# kat sweep over 3 processes writes one CSV in grid order, equal to the serial one (but for
# the seconds column).
"$KAT" sweep --n 40,80,120 --d 2,3 --degree 1,2 --out "$tmp/serial.csv"
timeout $T "${MPI[@]}" -np 3 "$KAT" sweep --n 40,80,120 --d 2,3 --degree 1,2 \
    --out "$tmp/mpi.csv" 2>"$tmp/sweep.err"
check "sweep -np 3 exits 0" 0 test $? -eq 0
check "sweep -np 3: the serial CSV in grid order" 0 \
    cmp <(cut -d, -f1-8 "$tmp/serial.csv") <(cut -d, -f1-8 "$tmp/mpi.csv")
check "sweep -np 3: 12 rows and a header" 0 test "$(wc -l <"$tmp/mpi.csv")" -eq 13

exit "$fail"
