#!/bin/sh
# `kat features`: usage errors (exit 2), library errors (exit 1), real runs with --json whose
# numbers are checked: exact maps reach rounding level, random maps a Monte Carlo level.
set -u
kat="$1"
# shellcheck source=SCRIPTDIR/cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

check "features --help" 0 "$kat" features --help
expect "help lists the maps" "rff-laplace:M"
check "no --map" 2 "$kat" features --d 4
check "no --d" 2 "$kat" features --map taylor:2
check "unknown map" 2 "$kat" features --map cosine:3 --d 4
check "taylor without order" 2 "$kat" features --map taylor --d 4
check "taylor negative order" 2 "$kat" features --map taylor:-1 --d 4
check "rff without count" 2 "$kat" features --map rff --d 4
check "rff bad count" 2 "$kat" features --map rff:12x --d 4
check "favor bad option" 2 "$kat" features --map favor:8:orth --d 4
check "poly with --scale" 2 "$kat" features --map 'poly:x^2' --d 4 --scale 2
check "bad flag" 2 "$kat" features --map taylor:2 --d 4 --bogus
check "--n 0" 2 "$kat" features --map taylor:2 --d 4 --n 0
check "d = 0" 2 "$kat" features --map taylor:2 --d 0
expect "d = 0 names d" "d must be >= 1"
check "rff M = 0" 2 "$kat" features --map rff:0 --d 4
expect "M = 0 named" "M must be >= 1"
check "rff sigma <= 0" 2 "$kat" features --map rff:8 --d 4 --scale -1
expect "sigma named" "sigma = -1"
check "taylor order too large" 2 "$kat" features --map taylor:1000 --d 64
expect "size in the message" "exceeds the limit"
check "poly of a non-polynomial" 2 "$kat" features --map 'poly:exp(x)' --d 4
expect "not a polynomial" "not a polynomial"

# Exact maps: errors at rounding level.
check "taylor:2 --json" 0 "$kat" features --map taylor:2 --d 16 --n 200 --json
expect "taylor:2 dim 1 + d + d(d+1)/2" '"dim":153'
expect "taylor:2 is positive" '"positive":true'
check "poly --json" 0 "$kat" features --map 'poly:(1+x)^4' --d 10 --n 200 --json
expect "poly dim C(14,4)" '"dim":1001'
json_le "poly map is exact" max_abs_err 1e-12
check "poly with a negative coefficient" 0 "$kat" features --map 'poly:2 - x + 3*x^3' --d 5 --n 200 --json
json_le "signed poly map is exact" max_abs_err 1e-12
check "taylor:20 approximates exp" 0 "$kat" features --map taylor:20 --d 3 --n 200 --json
json_le "taylor:20 error" max_rel_err 1e-12
# Random maps: Monte Carlo error ~ 1/sqrt(M).
check "rff --json" 0 "$kat" features --map rff:4096:pair --d 8 --n 200 --json
json_le "rff mean error" mean_abs_err 0.05
check "favor ortho --json" 0 "$kat" features --map favor:512:ortho --d 8 --n 200 --json --fp32
json_le "favor mean error" mean_rel_err 0.1
expect "fp32 path" '"precision":"fp32"'
check "group --json" 0 "$kat" features --map group --d 6 --n 200 --json
json_le "group map is exact" max_abs_err 1e-12
check "bench" 0 "$kat" features --map taylor:1 --d 8 --n 64 --bench --json
expect "bench reports the ratio" '"apply_over_sgemm":'
# a group map takes only corners and has no vjp: the bench times it on corners (it used to
# fail on Gaussian rows) and reports no vjp time
check "bench group map" 0 "$kat" features --map group --d 3 --a 1,2,0.5 --n 64 --bench --json
expect "bench group map: no vjp time" '"vjp_f32_ms":null'
expect "bench group map: a map time" '"apply_over_sgemm":[0-9]'
# One grammar (the library's kat_featmap_spec_parse) in every command: taylor2 is taylor:2.
check "features taylor2" 0 "$kat" features --map taylor2 --d 5 --n 50 --json
cp "$out" "$tmp/taylor2.json"
check "features taylor:2" 0 "$kat" features --map taylor:2 --d 5 --n 50 --json
json_check "taylor2 and taylor:2 are one map" "{k: v for k, v in j.items() if k != 'map'} == {k: v for k, v in json.load(open('$tmp/taylor2.json')).items() if k != 'map'}"
check "features elu1" 0 "$kat" features --map elu1 --d 6 --n 50 --json
json_le "elu1 is its own kernel" max_abs_err 1e-12
# The default seed is the library's KAT_FEATMAP_DEFAULT_SEED, 0 (the Python package's too).
check "favor:16 with --seed 0" 0 "$kat" features --map favor:16 --d 4 --n 50 --json --seed 0
cp "$out" "$tmp/seed0.json"
check "favor:16 without --seed" 0 "$kat" features --map favor:16 --d 4 --n 50 --json
expect "the default seed is 0" '"seed":0'
if cmp -s "$out" "$tmp/seed0.json"; then _cli_ok "no --seed is --seed 0"; else
    _cli_fail "no --seed differs from --seed 0"; fi
check "favor:0" 2 "$kat" features --map favor:0 --d 4
expect_usage "favor:0 names the count" \
    "kat features: --map: map 'favor:0': the feature count M must be >= 1" "kat features"
check "poly with a malformed expression" 2 "$kat" features --map 'poly:(1+x' --d 4
expect_usage "the malformed expression is named" "kat features: --map 'poly:(1+x': column 5: \
unexpected end of input: expected ')' to close the '(' at column 1" "kat features"
check "elu1 with --scale" 2 "$kat" features --map elu1 --d 4 --scale 2
expect_err "elu1 has no scale" "kat features: --scale does not apply to elu1 maps"
check "unknown map lists the grammar" 2 "$kat" features --map cosine:3 --d 4
expect_err "unknown map message" "unknown map 'cosine:3' (taylor:P, taylorP, poly:EXPR,"
exit "$fail"
