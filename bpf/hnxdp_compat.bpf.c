// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * hnxdp_compat.bpf.c - the datapath of hnxdp.bpf.c for kernels without the
 * kfuncs it uses (bpf_cast_to_kern_ctx and bpf_rdonly_cast, Linux 6.2+).
 * Same programs, maps and verdicts; the control plane loads this object when
 * the running kernel's BTF lacks those kfuncs (`hnxdp probe` tells which).
 */
#define HNXDP_COMPAT 1
#include "hnxdp.bpf.c"
