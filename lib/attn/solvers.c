/* The attention solvers, in order of preference: a plan takes the first whose supports()
 * accepts its desc and pattern. A new pattern or backend is one solver file and one line
 * here (before the CPU solvers it should win over). */
#include "attn/solver.h"

const kat_attn_solver *const kat_attn_solvers[] = {
    &kat_solver_flash,
    &kat_solver_qkdrop,
    &kat_solver_hash,
    &kat_solver_lsh,
    &kat_solver_window,
    &kat_solver_blockmask,
    &kat_solver_linear,
    NULL,
};
