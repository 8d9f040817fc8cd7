# SPDX-License-Identifier: MIT
# Packaging and ABI checks (issue 5); included from Makefile.am.
