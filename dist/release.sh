#!/bin/sh
# dist/release.sh - what "make release" runs: static, stripped -Os builds of
# both programs for each CPU below, with musl, into one folder (RELEASE_DIR,
# default build/release) with a SHA256SUMS file:
#
#   make release BEARSSL_SRC=DIR MUSL_SRC=DIR
#   make release BEARSSL_SRC=DIR RELEASE_TARGETS=x86_64   # no MUSL_SRC needed
#
#   target   compiler (Debian 12 package)              file name ends in
#   x86_64   musl-gcc (musl-tools)                     -linux-x86_64
#   i386     i686-linux-gnu-gcc (gcc-i686-linux-gnu)   -linux-i386
#   mips     mips-linux-gnu-gcc (gcc-mips-linux-gnu)   -linux-mips
#   mipsel   mipsel-linux-gnu-gcc (gcc-mipsel-...)     -linux-mipsel
#   armhf    arm-linux-gnueabihf-gcc (gcc-arm-...)     -linux-armhf
#   aarch64  aarch64-linux-gnu-gcc (gcc-aarch64-...)   -linux-aarch64
#
# Debian has musl only for the machine itself, so for the five cross
# targets musl is built here from MUSL_SRC (apt-get source musl) with the
# cross compiler, once, into build/musl-TARGET-KEY (KEY: a checksum of the
# source path and the compiler's version); about 40 s each on 2 cores.
# BearSSL is built from BEARSSL_SRC by gstunnel's Makefile. Each target is
# built by "make static" in its own copy of gstunnel.c and the Makefile,
# build/release-work/TARGET, so the tree's own programs are left alone and
# each target keeps its BearSSL objects. The files are named
# gstunnel_client-VERSION-linux-TARGET and gstunnel_server-VERSION-...
#
# Called by the Makefile with MAKE, VERSION, BEARSSL_SRC, MUSL_SRC,
# RELEASE_TARGETS, RELEASE_DIR and RELEASE_CFLAGS (default -Os) in the
# environment. It goes on after a failed target, and then exits 1 without
# writing SHA256SUMS.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
: "${MAKE:=make}" "${RELEASE_DIR:=build/release}" "${RELEASE_CFLAGS:=-Os}"
: "${RELEASE_TARGETS:=x86_64 i386 mips mipsel armhf aarch64}"
: "${BEARSSL_SRC:=}" "${MUSL_SRC:=}"
VERSION=${VERSION:-$(sed -n 's/^VERSION = //p' Makefile)}

die() { echo "release: $*" >&2; exit 1; }
[ -n "$BEARSSL_SRC" ] && [ -f "$BEARSSL_SRC/inc/bearssl.h" ] ||
	die "set BEARSSL_SRC to BearSSL's source tree (apt-get source bearssl)"
BEARSSL_SRC=$(cd "$BEARSSL_SRC" && pwd)
mkdir -p "$RELEASE_DIR"
RELEASE_DIR=$(cd "$RELEASE_DIR" && pwd)

# cross TARGET: the binutils prefix of a target, empty for x86_64's musl-gcc
cross() {
	case $1 in
	x86_64) echo "" ;;
	i386) echo i686-linux-gnu- ;;
	mips) echo mips-linux-gnu- ;;
	mipsel) echo mipsel-linux-gnu- ;;
	armhf) echo arm-linux-gnueabihf- ;;
	aarch64) echo aarch64-linux-gnu- ;;
	*) return 1 ;;
	esac
}

# musl_for TARGET PREFIX: build musl with PREFIX-gcc unless it is there;
# prints the musl-gcc wrapper's path. --enable-wrapper=gcc: without it musl
# makes musl-gcc only when the cross compiler already finds glibc headers.
musl_for() {
	_key=$(printf '%s %s\n' "$MUSL_SRC" "$("${2}gcc" --version | head -n 1)" |
		cksum | cut -d' ' -f1)
	_dir=$top/build/musl-$1-$_key
	if [ ! -x "$_dir/bin/musl-gcc" ]; then
		echo "  musl: building it from $MUSL_SRC into ${_dir#"$top"/}" >&2
		rm -rf "$_dir" "$_dir.obj"
		mkdir -p "$_dir.obj"
		(cd "$_dir.obj" && "$MUSL_SRC/configure" --target="${2%-}" \
			CROSS_COMPILE="$2" --disable-shared --enable-wrapper=gcc \
			--prefix="$_dir" && make -j"$(nproc 2>/dev/null || echo 2)" &&
			make install) >"$_dir.log" 2>&1 ||
			{ tail -n 20 "$_dir.log" >&2; rm -rf "$_dir"; return 1; }
		rm -rf "$_dir.obj" "$_dir.log"
	fi
	echo "$_dir/bin/musl-gcc"
}

sha256() {
	if command -v sha256sum >/dev/null; then sha256sum "$@"
	else shasum -a 256 "$@"; fi
}

for t in $RELEASE_TARGETS; do
	cross "$t" >/dev/null || die "unknown target '$t' (x86_64 i386 mips mipsel armhf aarch64)"
	if [ "$t" != x86_64 ] && [ -z "$MUSL_SRC" ]; then
		die "set MUSL_SRC to musl's source tree (apt-get source musl) for $t"
	fi
done
[ -z "$MUSL_SRC" ] || MUSL_SRC=$(cd "$MUSL_SRC" && pwd)

rm -f "$RELEASE_DIR"/gstunnel_client-*-linux-* \
	"$RELEASE_DIR"/gstunnel_server-*-linux-* "$RELEASE_DIR/SHA256SUMS"
failed=""
for t in $RELEASE_TARGETS; do
	t0=$(date +%s)
	echo "== $t"
	prefix=$(cross "$t")
	if [ "$t" = x86_64 ]; then
		cc=musl-gcc
	elif ! command -v "${prefix}gcc" >/dev/null; then
		echo "  no ${prefix}gcc: apt-get install gcc-${prefix%-}" >&2
		failed="$failed $t"; continue
	elif ! cc=$(musl_for "$t" "$prefix"); then
		echo "  musl for $t failed" >&2
		failed="$failed $t"; continue
	fi
	work=$top/build/release-work/$t
	mkdir -p "$work"
	cp gstunnel.c Makefile "$work/"
	if ! (cd "$work" && "$MAKE" static CC="$cc" AR="${prefix}ar" \
		CFLAGS="$RELEASE_CFLAGS" BEARSSL_SRC="$BEARSSL_SRC") \
		>"$work/build.log" 2>&1; then
		tail -n 20 "$work/build.log" >&2
		failed="$failed $t"; continue
	fi
	for p in client server; do
		f=$RELEASE_DIR/gstunnel_$p-$VERSION-linux-$t
		cp "$work/gstunnel_$p" "$f"
		if "${prefix}readelf" -l "$f" | grep -q INTERP; then
			echo "  ${f##*/} is not static" >&2
			failed="$failed $t"
		fi
		echo "  ${f#"$top"/}: $(wc -c <"$f" | tr -d ' ') bytes"
	done
	echo "  $(($(date +%s) - t0)) s"
done
[ -z "$failed" ] || die "failed:$failed (no SHA256SUMS written)"
(cd "$RELEASE_DIR" && sha256 gstunnel_client-* gstunnel_server-* >SHA256SUMS)
echo "== ${RELEASE_DIR#"$top"/}/SHA256SUMS"
cat "$RELEASE_DIR/SHA256SUMS"
