/* kat — Kernel Attention Toolkit. Umbrella header: includes every public module. */
#ifndef KAT_KAT_H
#define KAT_KAT_H

#include "kat/core.h"
#include "kat/io.h"
#include "kat/fn.h"
#include "kat/featmap.h"
#include "kat/tensor.h"

#endif
