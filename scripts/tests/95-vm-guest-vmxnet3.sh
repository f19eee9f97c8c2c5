#!/usr/bin/env bash
# 95-vm-guest-vmxnet3: test 95 on Debian's 6.12 kernel (tcx) with a vmxnet3 VF;
# 2 cycles (95 itself runs 5 on this kernel).
VM_LITE=1 VM_CYCLES=${VM_CYCLES:-2} VM_VF_DRIVER=vmxnet3 exec bash "$(dirname "$0")/95-vm-guest.sh" "$@"
