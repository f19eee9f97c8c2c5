#!/usr/bin/env bash
# 96-vm-guest-6.1-e1000e: test 95 on Debian 12's own kernel (6.1, classic tc,
# kfunc-free object) with an e1000e VF (generic XDP only); 2 cycles (the 5 of
# the 6.1 kernel run in 96-vm-guest-6.1-vmxnet3).
VM_LITE=1 VM_CYCLES=${VM_CYCLES:-2} VM_KPKG=linux-image-amd64 VM_VF_DRIVER=e1000e exec bash "$(dirname "$0")/95-vm-guest.sh" "$@"
