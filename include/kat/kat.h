/* kat — Kernel Attention Toolkit. Umbrella header: includes every public module. */
#ifndef KAT_KAT_H
#define KAT_KAT_H

#include "kat/core.h"
#include "kat/io.h"
#include "kat/fn.h"
#include "kat/featmap.h"
#include "kat/tensor.h"
#include "kat/attn.h"
#include "kat/rank.h"
#include "kat/linear.h"
#include "kat/featmaps.h"
#include "kat/group.h"
#include "kat/metric.h"
#include "kat/theorems.h"
#include "kat/sparse.h"

#endif
