# gstunnel - see README. Works with GNU make (4.0 or later) and BSD make.
#
#   make                          both binaries
#   make test                     build, then ./test.sh
#   make install PREFIX=/usr DESTDIR=/tmp/pkg
#   make windows BEARSSL_SRC=/src/bearssl-0.6     the .exe files, mingw-w64
#   make release BEARSSL_SRC=/src/bearssl-0.6 MUSL_SRC=/src/musl-1.2.3
#                                 static binaries for six CPUs, SHA256SUMS
#   make install-systemd PREFIX=/usr     the systemd units (dist/systemd)
#   make static CC=mips-linux-musl-gcc AR=mips-linux-musl-ar CFLAGS=-Os \
#        BEARSSL_SRC=/src/bearssl-0.6
#   make static CC=mips-linux-musl-gcc CFLAGS=-Os \
#        BEARSSL_CFLAGS=-I/opt/bearssl/inc \
#        BEARSSL_LIBS=/opt/bearssl/build/libbearssl.a
#
# CC, AR, CFLAGS, CPPFLAGS, LDFLAGS, PREFIX and DESTDIR are the user's; the
# project's own flags live in the GS_* variables.
#
# BearSSL is the system's (-lbearssl), or the one BEARSSL_CFLAGS and
# BEARSSL_LIBS name, or, with BEARSSL_SRC, built here from its source tree
# with the same CC, AR and CFLAGS into build/bearssl-N, where N is a checksum
# of those, so that builds for two compilers never share objects.
#
# "static" always relinks both binaries, statically, with unused code
# dropped and symbols stripped: for routers, size matters. Otherwise make only
# compares file times: after changing the compiler, run "make clean" first.

VERSION = 0.1.0
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
CFLAGS ?= -O2
AR ?= ar
BEARSSL_SRC ?=
GS_CFLAGS = -std=c99 -Wall -Wextra -pedantic -DVERSION=\"$(VERSION)\"
GS_LDFLAGS =
# Empty, or GS_STATIC_CFLAGS when "static" calls make again: one section per
# function and object, so that the linker can drop the unused ones.
GS_SIZE_CFLAGS =
# No unwind tables (C needs none; gstunnel.c and BearSSL throw nothing), and
# no page-aligned padding around the code segment or for RELRO (a static
# binary has almost no GOT to protect): about 15% of a router binary. A
# small common page size keeps ld from page-aligning the data in the file
# to save a page of address space (up to 4 KB of padding, coming and going
# with a few bytes of change elsewhere).
GS_STATIC_CFLAGS = -ffunction-sections -fdata-sections \
	-fno-asynchronous-unwind-tables -fno-unwind-tables
GS_STATIC_LDFLAGS = -static -Wl,--gc-sections -s -Wl,-z,noseparate-code \
	-Wl,-z,norelro -Wl,--build-id=none -Wl,-z,common-page-size=64
GS_WIN_LDFLAGS = -static -Wl,--gc-sections -s
BINS = gstunnel_client gstunnel_server

# BEARSSL_SRC changes the defaults of BEARSSL_CFLAGS and BEARSSL_LIBS, and
# makes the binaries depend on the library built here (GS_BEARSSL_LIB, empty
# without BEARSSL_SRC). "!=" runs the shell once, when the file is read.
# GS_BEARSSL_KEY is never empty where "!=" works.
GS_BEARSSL_KEY != printf '%s\n' "$(CC) $(GS_SIZE_CFLAGS) $(CFLAGS) \
	$(BEARSSL_SRC)" | sed 's/[[:space:]][[:space:]]*/ /g' | \
	cksum | cut -d' ' -f1
GS_BEARSSL_DIR = build/bearssl-$(GS_BEARSSL_KEY)
GS_BEARSSL_LIB != [ -z "$(BEARSSL_SRC)" ] || \
	echo $(GS_BEARSSL_DIR)/libbearssl.a
GS_BEARSSL_INC != [ -z "$(BEARSSL_SRC)" ] || echo -I$(BEARSSL_SRC)/inc
GS_BEARSSL_LINK != [ -z "$(BEARSSL_SRC)" ] && echo -lbearssl || \
	echo $(GS_BEARSSL_LIB)
BEARSSL_CFLAGS ?= $(GS_BEARSSL_INC)
BEARSSL_LIBS ?= $(GS_BEARSSL_LINK)

# One clear line instead of a page of compiler errors.
CHECK_CC = [ -n "$(GS_BEARSSL_KEY)" ] || { echo "gstunnel: this make does" \
	"not know '!=': use GNU make 4.0 or later, or BSD make" >&2; \
	exit 1; }; \
	$(CC) --version >/dev/null 2>&1 || { \
	echo "gstunnel: compiler '$(CC)' not found" >&2; exit 1; }
CHECK = $(CHECK_CC); \
	printf '\#include <bearssl.h>\n' | $(CC) $(CPPFLAGS) $(BEARSSL_CFLAGS) \
	-E -x c - >/dev/null 2>&1 || { echo "gstunnel: <bearssl.h> not found:" \
	"apt-get install libbearssl-dev, or set BEARSSL_SRC, or" \
	"BEARSSL_CFLAGS and BEARSSL_LIBS" >&2; exit 1; }

all: $(BINS)

gstunnel_client: gstunnel.c $(GS_BEARSSL_LIB)
	@$(CHECK)
	$(CC) $(GS_CFLAGS) $(CPPFLAGS) $(BEARSSL_CFLAGS) $(GS_SIZE_CFLAGS) \
		$(CFLAGS) -DCLIENT -o $@ gstunnel.c \
		$(LDFLAGS) $(GS_LDFLAGS) $(BEARSSL_LIBS)

gstunnel_server: gstunnel.c $(GS_BEARSSL_LIB)
	@$(CHECK)
	$(CC) $(GS_CFLAGS) $(CPPFLAGS) $(BEARSSL_CFLAGS) $(GS_SIZE_CFLAGS) \
		$(CFLAGS) -DSERVER -o $@ gstunnel.c \
		$(LDFLAGS) $(GS_LDFLAGS) $(BEARSSL_LIBS)

# BearSSL's own src/config.h picks the features for the target; nothing is
# written into BEARSSL_SRC. An object that exists is kept, so an interrupted
# build goes on where it stopped.
$(GS_BEARSSL_DIR)/libbearssl.a:
	@$(CHECK_CC)
	@[ -f "$(BEARSSL_SRC)/inc/bearssl.h" ] || { echo "gstunnel:" \
		"no inc/bearssl.h in BEARSSL_SRC=$(BEARSSL_SRC)" >&2; exit 1; }
	@mkdir -p $(GS_BEARSSL_DIR)/obj
	@echo "$(CC) $(GS_SIZE_CFLAGS) $(CFLAGS) -I$(BEARSSL_SRC)/inc" \
		"-I$(BEARSSL_SRC)/src -c $(BEARSSL_SRC)/src/*/*.c" \
		"(into $(GS_BEARSSL_DIR)/obj)"
	@for f in $(BEARSSL_SRC)/src/*/*.c; do \
		o=$(GS_BEARSSL_DIR)/obj/`basename $$f .c`.o; \
		[ -f $$o ] && continue; \
		$(CC) $(GS_SIZE_CFLAGS) $(CFLAGS) -I$(BEARSSL_SRC)/inc \
			-I$(BEARSSL_SRC)/src -c -o $$o.tmp $$f && \
			mv $$o.tmp $$o || { echo "gstunnel: $$f failed" >&2; \
			exit 1; }; \
	done
	rm -f $@
	$(AR) rcs $@ $(GS_BEARSSL_DIR)/obj/*.o

static:
	rm -f $(BINS)
	$(MAKE) GS_SIZE_CFLAGS="$(GS_STATIC_CFLAGS)" \
		GS_LDFLAGS="$(GS_STATIC_LDFLAGS)" $(BINS)

# Windows: gstunnel_client.exe and gstunnel_server.exe, with Debian's
# mingw-w64 unless CC names another compiler; BearSSL is built from
# BEARSSL_SRC with it. Static: no DLLs beyond Windows' own.
windows:
	@cc="$(CC)"; [ "$$cc" != cc ] || cc=x86_64-w64-mingw32-gcc; \
	ar="$(AR)"; [ "$$ar" != ar ] || ar=$${cc%gcc}ar; \
	echo "$(MAKE) CC=$$cc AR=$$ar gstunnel_client.exe gstunnel_server.exe"; \
	$(MAKE) CC="$$cc" AR="$$ar" GS_SIZE_CFLAGS="$(GS_STATIC_CFLAGS)" \
		gstunnel_client.exe gstunnel_server.exe

gstunnel_client.exe: gstunnel.c $(GS_BEARSSL_LIB)
	@$(CHECK)
	$(CC) $(GS_CFLAGS) $(CPPFLAGS) $(BEARSSL_CFLAGS) $(GS_SIZE_CFLAGS) \
		$(CFLAGS) -DCLIENT -o $@ gstunnel.c $(LDFLAGS) $(GS_WIN_LDFLAGS) \
		$(BEARSSL_LIBS) -lws2_32 -lbcrypt

gstunnel_server.exe: gstunnel.c $(GS_BEARSSL_LIB)
	@$(CHECK)
	$(CC) $(GS_CFLAGS) $(CPPFLAGS) $(BEARSSL_CFLAGS) $(GS_SIZE_CFLAGS) \
		$(CFLAGS) -DSERVER -o $@ gstunnel.c $(LDFLAGS) $(GS_WIN_LDFLAGS) \
		$(BEARSSL_LIBS) -lws2_32 -lbcrypt

# Release: static, stripped -Os builds of both programs for x86-64, i386,
# MIPS (big- and little-endian), ARMv7 hard-float and aarch64, with musl,
# named gstunnel_client-VERSION-linux-CPU, into RELEASE_DIR with a
# SHA256SUMS file. dist/release.sh does it (and says more): it picks the
# compiler for each CPU, so CC and CFLAGS are not used (RELEASE_CFLAGS is),
# and builds musl for the cross targets from MUSL_SRC into build/musl-*.
RELEASE_TARGETS ?= x86_64 i386 mips mipsel armhf aarch64
RELEASE_DIR ?= build/release
RELEASE_CFLAGS ?= -Os
MUSL_SRC ?=

release:
	MAKE="$(MAKE)" VERSION="$(VERSION)" BEARSSL_SRC="$(BEARSSL_SRC)" \
		MUSL_SRC="$(MUSL_SRC)" RELEASE_TARGETS="$(RELEASE_TARGETS)" \
		RELEASE_DIR="$(RELEASE_DIR)" RELEASE_CFLAGS="$(RELEASE_CFLAGS)" \
		sh dist/release.sh

test: $(BINS)
	./test.sh

# The man page serves both programs: gstunnel_client.1 and
# gstunnel_server.1 are links to it. The systemd units have their own
# target, install-systemd; the OpenWrt files are the OpenWrt package's.
install: $(BINS)
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	cp $(BINS) $(DESTDIR)$(BINDIR)/
	chmod 755 $(DESTDIR)$(BINDIR)/gstunnel_client \
		$(DESTDIR)$(BINDIR)/gstunnel_server
	cp dist/gstunnel.1 $(DESTDIR)$(MANDIR)/man1/gstunnel.1
	chmod 644 $(DESTDIR)$(MANDIR)/man1/gstunnel.1
	ln -sf gstunnel.1 $(DESTDIR)$(MANDIR)/man1/gstunnel_client.1
	ln -sf gstunnel.1 $(DESTDIR)$(MANDIR)/man1/gstunnel_server.1

# The systemd units of dist/systemd, with BINDIR in their ExecStart=
# lines. UNITDIR: /usr/local/lib/systemd/system is on systemd's path too.
UNITDIR ?= $(PREFIX)/lib/systemd/system
UNITS = gstunnel_client.service gstunnel_server.service \
	gstunnel-client@.service gstunnel-server@.service

install-systemd:
	mkdir -p $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
		sed 's|/usr/local/bin/|$(BINDIR)/|g' dist/systemd/$$u \
			>$(DESTDIR)$(UNITDIR)/$$u && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/gstunnel_client \
		$(DESTDIR)$(BINDIR)/gstunnel_server \
		$(DESTDIR)$(MANDIR)/man1/gstunnel.1 \
		$(DESTDIR)$(MANDIR)/man1/gstunnel_client.1 \
		$(DESTDIR)$(MANDIR)/man1/gstunnel_server.1
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done

# build/cross, build/deb and build/systemd belong to the .ci scripts, which
# empty them themselves; build/musl-* (musl for "release", slow to build)
# stays: rm -rf build drops it.
clean:
	rm -f $(BINS) gstunnel_client.exe gstunnel_server.exe
	rm -rf build/bearssl-* build/release-work build/release
	rmdir build 2>/dev/null || :

.PHONY: all static windows release test install install-systemd uninstall \
	clean
