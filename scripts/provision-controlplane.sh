#!/usr/bin/env bash
# Prints the folder holding etcd, kube-apiserver, kube-controller-manager and kubectl, building
# them on first use: the control-plane part of scripts/provision.sh (see there), for callers that
# want only that folder on stdout. Progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dirs="$(bash "$here/provision.sh" controlplane)"
printf '%s\n' "${dirs#controlplane=}"
