# SPDX-License-Identifier: MIT
# Packaging and ABI checks (issue 5); included from Makefile.am.
#
#   make check        also runs tests/check_symbols.sh: the exported symbols against
#                     src/melloc.map, include/melloc.h.in, abi/standard-names.txt and
#                     debian/libmelloc0.symbols
#                     (and the hardened library against them and
#                     debian/libmelloc-hardened0.symbols: the same exports)
#                     and tests/test_pkgconfig.sh: melloc-uninstalled.pc (pkg-config
#                     with PKG_CONFIG_PATH=<build dir>) builds programs that run on
#                     the build tree's library, dynamic and -static (and the same with
#                     melloc-hardened-uninstalled.pc and the hardened library)
#   make abi-check    abidiff of the built library against the committed baseline
#                     abi/libmelloc.so.0.abi: only additions in a new version node (or a
#                     new standard name) pass.  Needs abigail-tools and a -g build.
#                     The hardened library is checked against the same baseline, under
#                     its own soname: its ABI is the default library's.
#   make abi-dump     rewrite the baseline from the built library (when a release adds
#                     a node); review with git diff and commit abi/ with that change
#   make deb          Debian packages from the dist tarball, in $(PKG_BUILDDIR)/deb
#   make rpm          RPMs from the dist tarball (rpmbuild -ta), in $(PKG_BUILDDIR)/rpm
#
# .ci/packaging.sh runs all of these the way CI does.

TESTS += tests/check_symbols.sh tests/test_pkgconfig.sh
tests/test_pkgconfig.log: libmelloc.la melloc-uninstalled.pc
if HARDENED
tests/test_pkgconfig.log tests/check_symbols.log: libmelloc-hardened.la melloc-hardened-uninstalled.pc
endif

ABI_BASELINE = $(srcdir)/abi/libmelloc.so.0.abi
ABI_LIB = $(builddir)/.libs/libmelloc.so
if HARDENED
ABI_HARDENED_LA = libmelloc-hardened.la
ABI_HARDENED_LIB = $(builddir)/.libs/libmelloc-hardened.so
endif

DEBIAN_FILES = debian/changelog debian/control debian/copyright debian/rules \
	debian/source/format debian/libmelloc0.install debian/libmelloc0.symbols \
	debian/libmelloc-hardened0.install debian/libmelloc-hardened0.symbols \
	debian/libmelloc-dev.install debian/melloc.install debian/not-installed \
	debian/tests/control debian/tests/link debian/tests/command

EXTRA_DIST += tests/check_symbols.sh tests/test_pkgconfig.sh abi/standard-names.txt abi/abi-check.sh \
	abi/libmelloc.so.0.abi rpm/melloc.spec .ci/packaging.sh $(DEBIAN_FILES)

abi-check: libmelloc.la $(ABI_HARDENED_LA)
	$(SHELL) $(srcdir)/abi/abi-check.sh check $(ABI_LIB) $(builddir)/include \
	  $(ABI_BASELINE) $(srcdir)/abi/standard-names.txt
	@if test -n "$(ABI_HARDENED_LIB)"; then \
	  sed "s/ soname='libmelloc\.so\.0'/ soname='libmelloc-hardened.so.0'/" \
	    $(ABI_BASELINE) > abi-hardened.abi.tmp || exit 1; \
	  st=0; $(SHELL) $(srcdir)/abi/abi-check.sh check $(ABI_HARDENED_LIB) $(builddir)/include \
	    abi-hardened.abi.tmp $(srcdir)/abi/standard-names.txt || st=$$?; \
	  rm -f abi-hardened.abi.tmp; exit $$st; \
	fi

abi-dump: libmelloc.la
	$(SHELL) $(srcdir)/abi/abi-check.sh dump $(ABI_LIB) $(builddir)/include $(ABI_BASELINE)

# Packages are built from the dist tarball, never in the working tree (debian/rules clean
# runs make distclean).  DEB_BUILD_OPTIONS and RPMBUILD_ARGS pass through, for example
# make deb DEB_BUILD_OPTIONS=nocheck, make rpm RPMBUILD_ARGS=--nodeps.
PKG_BUILDDIR = $(abs_top_builddir)/packages
RPMBUILD_ARGS =

deb: dist-gzip
	rm -rf $(PKG_BUILDDIR)/deb && $(MKDIR_P) $(PKG_BUILDDIR)/deb
	tar -C $(PKG_BUILDDIR)/deb -xzf $(distdir).tar.gz
	cd $(PKG_BUILDDIR)/deb/$(distdir) && dpkg-buildpackage -us -uc -b
	@echo "packages: $(PKG_BUILDDIR)/deb"; ls $(PKG_BUILDDIR)/deb/*.deb

rpm: dist-gzip
	rm -rf $(PKG_BUILDDIR)/rpm && $(MKDIR_P) $(PKG_BUILDDIR)/rpm
	rpmbuild -ta --define '_topdir $(PKG_BUILDDIR)/rpm' $(RPMBUILD_ARGS) $(distdir).tar.gz
	@echo "packages: $(PKG_BUILDDIR)/rpm/RPMS"; find $(PKG_BUILDDIR)/rpm/RPMS -name '*.rpm'

clean-packages:
	-rm -rf $(PKG_BUILDDIR)

.PHONY: abi-check abi-dump deb rpm clean-packages
