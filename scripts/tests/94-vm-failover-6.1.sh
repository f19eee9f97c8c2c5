#!/usr/bin/env bash
# 94-vm-failover-6.1: test 94 (a guest whose kernel pairs the VF: net_failover;
# coexistence with AF_XDP and XDP) on Debian 12's own kernel, 6.1.
VM_KPKG=linux-image-amd64 exec bash "$(dirname "$0")/94-vm-failover.sh" "$@"
