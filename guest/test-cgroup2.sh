#!/bin/bash
# `make test-cgroup2`: the cgroup v2 suite in the guest (guest/test-cgroups.sh).
exec "$(dirname "$0")/test-cgroups.sh" v2
