/* The coroutine scheduler behind cuda_runtime.h here: one coroutine per thread of a block,
 * run round-robin; a thread that waits at a barrier or a warp-wide exchange yields until the
 * last live thread of its block or warp arrives. */
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <vector>

#include "cuda_runtime.h"

namespace emu {

struct pending_copy {
    void *dst;
    unsigned char data[16];
};

struct lane_ctx {
    ucontext_t uc;
    std::deque<std::vector<pending_copy>> groups;   /* committed copy groups, oldest first */
    std::vector<pending_copy> open;                 /* copies not committed yet */
    uint3 tid;
    int warp, lane;
    bool done;
    int count_calls;   /* __syncthreads_count calls so far: their parity picks the counter */
};

struct group {   /* a barrier over the live threads of a block or a warp */
    int live = 0, arrived = 0;
    unsigned gen = 0;
    const void *ins[32];
};

lane_ctx *cur;
dim3 grid, block, blk;
alignas(16) unsigned char shared_mem[SMEM_BYTES];

static ucontext_t sched;
static std::vector<lane_ctx> lanes;
static std::vector<char *> stacks;
static std::vector<group> warps;
static group blockwide;
static void (*body_fn)(const void *);
static const void *body_args;
static const size_t STACK = 512 * 1024;

static void yield() { swapcontext(&cur->uc, &sched); }

static void arrive(group &g) {
    const unsigned gen = g.gen;
    if (++g.arrived == g.live) {
        g.arrived = 0;
        g.gen++;
        return;
    }
    while (g.gen == gen) yield();
}

static void leave(group &g) {
    g.live--;
    if (g.arrived && g.arrived == g.live) {
        g.arrived = 0;
        g.gen++;
    }
}

uint3 thread_idx() { return cur->tid; }
int lane_id() { return cur->lane; }
void syncthreads() { arrive(blockwide); }

static int counts[2];

int syncthreads_count(int pred) {
    const int par = cur->count_calls++ % 2;
    counts[par] += pred != 0;
    arrive(blockwide);
    const int total = counts[par];
    counts[par ^ 1] = 0;   /* free: read last in the call before, filled first in the next */
    arrive(blockwide);
    return total;
}

void warp_exchange(const void *in, void (*fn)(const void *const *, int, void *), void *out) {
    group &w = warps[cur->warp];
    if (w.live != 32) {
        fprintf(stderr, "emu: a warp-wide operation with %d live lanes\n", w.live);
        abort();
    }
    w.ins[cur->lane] = in;
    arrive(w);
    fn(w.ins, cur->lane, out);
    arrive(w);   /* nobody changes its input before every lane has read it */
}

float shfl_xor(float x, int m) {
    struct arg { float x; int m; } a{x, m};
    float out;
    warp_exchange(&a, [](const void *const *ins, int lane, void *o) {
        const int m = static_cast<const arg *>(ins[lane])->m;
        *static_cast<float *>(o) = static_cast<const arg *>(ins[lane ^ m])->x;
    }, &out);
    return out;
}

void async_copy16(void *dst, const void *src, bool valid) {
    pending_copy c;
    c.dst = dst;
    if (valid) memcpy(c.data, src, 16);
    else memset(c.data, 0, 16);
    cur->open.push_back(c);
}

/* A group lands at once or at its wait, at random: a reader that runs ahead of the wait and
 * a copy issued while others still read its destination both go wrong somewhere. */
void async_commit() {
    static uint64_t state = 0x9e3779b97f4a7c15ull;
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    if (state & 1) {
        for (const pending_copy &c : cur->open) memcpy(c.dst, c.data, 16);
        cur->open.clear();   /* landed; the empty group still counts for the waits */
    }
    cur->groups.push_back(std::move(cur->open));
    cur->open.clear();
}

void async_wait(int n) {
    while ((int)cur->groups.size() > n) {
        for (const pending_copy &c : cur->groups.front()) memcpy(c.dst, c.data, 16);
        cur->groups.pop_front();
    }
}

static void entry() {
    body_fn(body_args);
    cur->done = true;
    leave(warps[cur->warp]);
    leave(blockwide);
}

cudaError_t last_error() { return cudaSuccess; }

void run_grid(void (*body)(const void *), const void *args, dim3 g, dim3 b, size_t smem) {
    const int n = (int)(b.x * b.y * b.z);
    if (n % 32 || smem > SMEM_BYTES) {
        fprintf(stderr, "emu: block of %d threads, %zu bytes of shared memory\n", n, smem);
        abort();
    }
    grid = g;
    block = b;
    body_fn = body;
    body_args = args;
    lanes.resize(n);
    while ((int)stacks.size() < n) stacks.push_back(static_cast<char *>(malloc(STACK)));
    warps.assign(n / 32, group{});
    for (unsigned z = 0; z < g.z; z++)
        for (unsigned y = 0; y < g.y; y++)
            for (unsigned x = 0; x < g.x; x++) {
                blk = dim3(x, y, z);
                memset(shared_mem, 0xff, smem);   /* NaNs in 16 and 32 bits: unwritten reads show */
                blockwide = group{};
                counts[0] = counts[1] = 0;
                blockwide.live = n;
                for (auto &w : warps) w = group{}, w.live = 32;
                for (int i = 0; i < n; i++) {
                    lane_ctx &l = lanes[i];
                    l.tid = uint3{(unsigned)i % b.x, (unsigned)i / b.x % b.y,
                                  (unsigned)i / (b.x * b.y)};
                    l.warp = i / 32;
                    l.lane = i % 32;
                    l.done = false;
                    l.count_calls = 0;
                    l.groups.clear();
                    l.open.clear();
                    getcontext(&l.uc);
                    l.uc.uc_stack.ss_sp = stacks[i];
                    l.uc.uc_stack.ss_size = STACK;
                    l.uc.uc_link = &sched;
                    makecontext(&l.uc, entry, 0);
                }
                for (bool any = true; any;) {
                    any = false;
                    for (auto &l : lanes)
                        if (!l.done) {
                            cur = &l;
                            swapcontext(&sched, &l.uc);
                            any = true;
                        }
                }
            }
}

} // namespace emu
