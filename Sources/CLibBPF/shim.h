#ifndef HNXDP_CLIBBPF_H
#define HNXDP_CLIBBPF_H
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>
#endif
