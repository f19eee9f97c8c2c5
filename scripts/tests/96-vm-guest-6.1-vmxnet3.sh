#!/usr/bin/env bash
# 96-vm-guest-6.1-vmxnet3: test 95 on Debian 12's own kernel (linux-image-amd64,
# 6.1: no tcx and none of the datapath's kfuncs, so hnxdp attaches with classic
# tc and loads the kfunc-free object) with a vmxnet3 VF (native XDP driver).
VM_KPKG=linux-image-amd64 VM_VF_DRIVER=vmxnet3 exec bash "$(dirname "$0")/95-vm-guest.sh" "$@"
