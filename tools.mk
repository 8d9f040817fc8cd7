# SPDX-License-Identifier: MIT
# The melloc command, man pages and their tests (issue 6); included from Makefile.am.
#
#   tools/melloc        runs a program with the library preloaded (installed in bindir);
#                       the library paths it was installed with (libmelloc.so.0 and,
#                       for --hardened, libmelloc-hardened.so.0) are compiled in
#   man/melloc.{1,3,7}  the command, the API, the settings and the collector
#   make check          also runs tests/tools/test_melloc_cmd.sh (the command
#                       on real programs, against the build tree's library) and
#                       tests/tools/test_man.sh (the pages render without a warning, as
#                       lintian runs them, and name every function, key and option)
#                       and tests/tools/test_man_examples.sh (the pages' examples
#                       compile with -Wall -Werror and run, their settings, messages
#                       and statistics are the program's)

bin_PROGRAMS = tools/melloc
tools_melloc_SOURCES = tools/melloc.c
tools_melloc_CPPFLAGS = $(AM_CPPFLAGS) -DMELLOC_LIB_PATH='"$(libdir)/libmelloc.so.0"' \
	-DMELLOC_HARDENED_LIB_PATH='"$(libdir)/libmelloc-hardened.so.0"'

dist_man_MANS = man/melloc.1 man/melloc.3 man/melloc.7

TESTS += tests/tools/test_melloc_cmd.sh tests/tools/test_man.sh tests/tools/test_man_examples.sh \
	tests/tools/test_prof_pprof.sh
EXTRA_DIST += tests/tools/test_melloc_cmd.sh tests/tools/test_man.sh tests/tools/test_man_examples.sh \
	tests/tools/test_prof_pprof.sh
# The scripts run the command and preload (or link) the library: both must be built.
tests/tools/test_melloc_cmd.log tests/tools/test_man_examples.log: tools/melloc$(EXEEXT) libmelloc.la
# The heap profiler's dump of tests/integration/test_prof, read by go tool pprof.
if HAVE_CHECK
PROF_PPROF_DEPS = tests/integration/test_prof$(EXEEXT)
endif
tests/tools/test_prof_pprof.log: tools/melloc$(EXEEXT) libmelloc.la $(PROF_PPROF_DEPS)

if HARDENED
tests/tools/test_melloc_cmd.log: libmelloc-hardened.la
endif
