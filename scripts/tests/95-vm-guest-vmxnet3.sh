#!/usr/bin/env bash
# 95-vm-guest-vmxnet3: test 95 on Debian's 6.12 kernel (tcx) with a vmxnet3 VF.
VM_VF_DRIVER=vmxnet3 exec bash "$(dirname "$0")/95-vm-guest.sh" "$@"
