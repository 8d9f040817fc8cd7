# SPDX-License-Identifier: MIT
# The melloc command, man pages and their tests (issue 6); included from Makefile.am.
