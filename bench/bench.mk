# SPDX-License-Identifier: MIT
# Benchmarks: included by the top-level Makefile.am (`include bench/bench.mk`).
#
#   make bench          build the library and the workloads, run bench/run.py
#                       against glibc, jemalloc, tcmalloc and mimalloc
#                       (options: make bench BENCH_ARGS='--quick -w mixed')
#   make bench-check    fail if melloc's fast path exceeds bench/budget.txt
#                       (options: BENCH_CHECK_ARGS='--all' to compare)
#   make bench-misuse   run the heap-misuse suite (bench/misuse/) under every
#                       allocator (options: BENCH_MISUSE_ARGS='--only df-')
#   make bench-clean    remove the workload programs and bench/results/latest
#
# The workloads are plain C programs that call malloc: they are built with
# $(CC) and fixed flags (not the project's CFLAGS, which may be a debug or
# sanitizer build) and never linked against melloc; it is LD_PRELOADed.
# Benchmarks are not part of `make check`: timing never decides a test.

BENCH_PROGS = runone fastpath mixed prodcons larson cache large bigbuf grow handoff frag idle bursts barnes xbatch gthread tstress bignum setfam pareto sh8 replay
BENCH_CC_OPTS = -O2 -g -pthread
BENCH_LIBS = -lm
BENCH_PY = python3
BENCH_LIB = $(abs_top_builddir)/.libs/libmelloc.so
BENCH_ARGS =
BENCH_CHECK_ARGS =
BENCH_MISUSE_ARGS =

EXTRA_DIST += bench/README.md bench/bench.mk bench/budget.txt \
	bench/run.py bench/icount.py bench/benchlib.py bench/fastest.py bench/scaling.py bench/ceiling.py \
	bench/src/common.h bench/src/runone.c bench/src/fastpath.c \
	bench/src/mixed.c bench/src/prodcons.c bench/src/larson.c \
	bench/src/cache.c bench/src/large.c bench/src/bigbuf.c bench/src/grow.c bench/src/handoff.c bench/src/frag.c \
	bench/src/idle.c bench/src/bursts.c bench/src/barnes.c bench/src/xbatch.c bench/src/gthread.c bench/src/tstress.c bench/src/bignum.c bench/src/setfam.c bench/src/pareto.c bench/src/sh8.c \
	bench/src/replay.c bench/src/alloctrace.c bench/src/alloctrace.h \
	bench/scripts/stress.rb bench/scripts/scaling.sh \
	bench/misuse/README.md bench/misuse/misuse.c bench/misuse/run.py \
	bench/misuse/run.sh bench/misuse/results-baseline.md bench/misuse/results-issue15.md \
	bench/misuse/results-baseline.json

# One shell loop rather than a rule per program: automake -Wall rejects
# %-pattern rules, and the programs are too small to need more.
bench-programs:
	@$(MKDIR_P) $(builddir)/bench/bin
	@for p in $(BENCH_PROGS); do \
	  src=$(srcdir)/bench/src/$$p.c; out=$(builddir)/bench/bin/$$p; \
	  if test ! -f $$out || test $$src -nt $$out || \
	     test $(srcdir)/bench/src/common.h -nt $$out || \
	     test $(srcdir)/bench/src/alloctrace.h -nt $$out; then \
	    echo "  CC       $$out"; \
	    $(CC) $(BENCH_CC_OPTS) -o $$out $$src $(BENCH_LIBS) || exit 1; \
	  fi; \
	done
	@src=$(srcdir)/bench/src/alloctrace.c; out=$(builddir)/bench/bin/alloctrace.so; \
	if test ! -f $$out || test $$src -nt $$out || \
	   test $(srcdir)/bench/src/alloctrace.h -nt $$out; then \
	  echo "  CC       $$out"; \
	  $(CC) $(BENCH_CC_OPTS) -shared -fPIC -o $$out $$src -ldl || exit 1; \
	fi

bench: all bench-programs
	$(BENCH_PY) $(srcdir)/bench/run.py --melloc $(BENCH_LIB) \
	  --bin-dir $(builddir)/bench/bin --out $(builddir)/bench/results/latest $(BENCH_ARGS)

bench-check: all bench-programs
	$(BENCH_PY) $(srcdir)/bench/icount.py --check --melloc $(BENCH_LIB) \
	  --budget $(srcdir)/bench/budget.txt --bin-dir $(builddir)/bench/bin $(BENCH_CHECK_ARGS)

bench-misuse: all
	$(BENCH_PY) $(srcdir)/bench/misuse/run.py --build $(abs_top_builddir) $(BENCH_MISUSE_ARGS)

bench-clean:
	-rm -rf $(builddir)/bench/bin $(builddir)/bench/results/latest

.PHONY: bench bench-check bench-misuse bench-programs bench-clean
