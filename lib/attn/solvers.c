/* The attention solvers, in order of preference: a plan takes the first whose supports()
 * accepts its desc and pattern. A new pattern or backend is one solver file and one line
 * here (before the CPU solvers it should win over). */
#include "attn/solver.h"

const kat_attn_solver *const kat__attn_solvers[] = {
    &kat__solver_flash,
    &kat__solver_qkdrop,
    &kat__solver_hash,
    &kat__solver_lsh,
    &kat__solver_window,
    &kat__solver_blockmask,
    &kat__solver_linear,
    NULL,
};
