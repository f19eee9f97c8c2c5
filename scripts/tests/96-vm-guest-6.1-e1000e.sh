#!/usr/bin/env bash
# 96-vm-guest-6.1-e1000e: test 95 on Debian 12's own kernel (6.1, classic tc,
# kfunc-free object) with an e1000e VF (generic XDP only).
VM_KPKG=linux-image-amd64 VM_VF_DRIVER=e1000e exec bash "$(dirname "$0")/95-vm-guest.sh" "$@"
