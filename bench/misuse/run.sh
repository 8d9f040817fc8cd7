#!/bin/bash
# SPDX-License-Identifier: MIT
# The heap-misuse suite: bench/misuse/run.sh -h for the options (run.py does the work).
exec python3 "$(dirname "$0")/run.py" "$@"
