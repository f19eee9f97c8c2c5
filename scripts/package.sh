#!/usr/bin/env bash
# package.sh - build hnxdp's Debian package: `scripts/package.sh` (from any cwd).
#
#   1. swift build -c release --static-swift-stdlib (the Swift runtime inside
#      the binary: no toolchain needed on the fleet; libbpf, libxdp, libelf,
#      zlib, libstdc++ and glibc stay Debian's shared libraries)
#   2. the man page with swift-argument-parser's generate-manual (offline)
#   3. dist/hnxdp_<version>_<arch>.deb with dpkg-deb --build (version from
#      `hnxdp --version`, Depends from the libraries the binary links), holding
#        /usr/sbin/hnxdp                                  stripped
#        /lib/systemd/system/hnxdp.service                packaging/hnxdp.service
#        /lib/systemd/system/hnxdp-bpffs.service          packaging/hnxdp-bpffs.service
#        /etc/hnxdp/hnxdp.conf                            conffile, commented example
#        /usr/share/bash-completion/completions/hnxdp     hnxdp --generate-completion-script
#        /usr/share/zsh/vendor-completions/_hnxdp
#        /usr/share/fish/vendor_completions.d/hnxdp.fish
#        /usr/share/man/man8/hnxdp.8.gz
#        /usr/share/doc/hnxdp/copyright
#        /usr/lib/udev/rules.d/81-hnxdp.rules             packaging/udev (docs/guests.md)
#        /usr/lib/systemd/network/05-hnxdp-vf.network     packaging/network
#        /usr/share/lintian/overrides/hnxdp               packaging/debian/lintian-overrides
#      and the maintainer scripts postinst, prerm, postrm (packaging/debian)
# Prints the path of the .deb on its last line. Needs swift on PATH, dpkg-deb,
# objdump and strip (binutils); no root needed.
#
# Options:  --scratch-path DIR   SwiftPM build directory (default .build; its
#                                release products are rebuilt as needed)
#           --out DIR            where the .deb goes (default dist/)
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$REPO"
SCRATCH=.build
OUT=dist
while (($#)); do
	case $1 in
	--scratch-path) SCRATCH=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-h | --help) sed -n '2,24p' "$0"; exit 0 ;;
	*) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
for tool in swift dpkg-deb dpkg-query objdump strip gzip ldconfig; do
	command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
	command -v "$tool" >/dev/null 2>&1 || { echo "package.sh: $tool not found on PATH" >&2; exit 1; }
done

log() { echo "package.sh: $*" >&2; }

# ---- 1. the binary; the man page generator with the same flags (another
# configuration in the same scratch path would make SwiftPM relink hnxdp
# without the static runtime).
BUILD=(swift build -c release --static-swift-stdlib --scratch-path "$SCRATCH")
t0=$SECONDS
log "building: ${BUILD[*]}"
"${BUILD[@]}" --product hnxdp >&2
"${BUILD[@]}" --product generate-manual >&2
BIN_DIR=$("${BUILD[@]}" --show-bin-path)
log "built in $((SECONDS - t0)) s"
BIN="$BIN_DIR/hnxdp"
# (No pipeline here that stops reading early: under pipefail a SIGPIPE'd writer fails it.)
if [[ $(objdump -p "$BIN" | grep -c 'NEEDED.*libswift' || true) != 0 ]]; then
	echo "package.sh: $BIN links the Swift runtime dynamically (stale build without --static-swift-stdlib?)" >&2
	exit 1
fi

VERSION=$("$BIN" --version | awk '$1 == "hnxdp" { print $2 }')
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "package.sh: cannot read the version from hnxdp --version" >&2; exit 1; }
ARCH=$(dpkg --print-architecture)

# ---- 2. Depends: the Debian package of every shared library the binary needs.
depends=()
for lib in $(objdump -p "$BIN" | awk '$1 == "NEEDED" { print $2 }'); do
	path=$(ldconfig -p | awk -v l="$lib" '$1 == l && $0 ~ /x86-64|64bit|aarch64/ && !p { p = $NF } END { print p }')
	[[ -n "$path" ]] || { echo "package.sh: cannot find $lib (ldconfig -p)" >&2; exit 1; }
	owner=$(dpkg-query -S "$path" 2>/dev/null || dpkg-query -S "$(readlink -f "$path")" 2>/dev/null || true)
	[[ -n "$owner" ]] || { echo "package.sh: no Debian package owns $path" >&2; exit 1; }
	pkg=${owner%%:*}
	[[ " ${depends[*]} " == *" $pkg "* ]] || depends+=("$pkg")
done
GLIBC=$(objdump -T "$BIN" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -n 1 | sed 's/GLIBC_//')
dep_line=""
for pkg in "${depends[@]}"; do
	[[ $pkg == libc6 ]] && pkg="libc6 (>= $GLIBC)"
	dep_line+="${dep_line:+, }$pkg"
done

# ---- 3. the tree.
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/hnxdp-package.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/hnxdp_${VERSION}_$ARCH"
install -d "$ROOT/DEBIAN" "$ROOT/usr/sbin" "$ROOT/lib/systemd/system" "$ROOT/etc/hnxdp" \
	"$ROOT/usr/share/bash-completion/completions" "$ROOT/usr/share/zsh/vendor-completions" \
	"$ROOT/usr/share/fish/vendor_completions.d" "$ROOT/usr/share/man/man8" "$ROOT/usr/share/doc/hnxdp"
install -m 0755 "$BIN" "$ROOT/usr/sbin/hnxdp"
strip --strip-unneeded --remove-section=.comment "$ROOT/usr/sbin/hnxdp"
install -m 0644 packaging/hnxdp.service "$ROOT/lib/systemd/system/hnxdp.service"
install -m 0644 packaging/hnxdp-bpffs.service "$ROOT/lib/systemd/system/hnxdp-bpffs.service"
install -m 0644 packaging/hnxdp.conf "$ROOT/etc/hnxdp/hnxdp.conf"
install -D -m 0644 packaging/udev/81-hnxdp.rules "$ROOT/usr/lib/udev/rules.d/81-hnxdp.rules"
install -D -m 0644 packaging/network/05-hnxdp-vf.network "$ROOT/usr/lib/systemd/network/05-hnxdp-vf.network"
# (bash completions are sourced, not run: no #! line.)
"$BIN" --generate-completion-script bash | sed '1{/^#!/d}' >"$ROOT/usr/share/bash-completion/completions/hnxdp"
"$BIN" --generate-completion-script zsh >"$ROOT/usr/share/zsh/vendor-completions/_hnxdp"
"$BIN" --generate-completion-script fish >"$ROOT/usr/share/fish/vendor_completions.d/hnxdp.fish"
# The man page's date: the commit's (reproducible), else today.
date=$(git log -1 --format=%cs 2>/dev/null || date -u +%F)
mkdir -p "$STAGE/man"
"$BIN_DIR/generate-manual" "$BIN" --section 8 --date "$date" --output-directory "$STAGE/man" >&2
# Empty lines are not mdoc (groff warns about each); paragraphs are .Pp already.
sed '/^[[:space:]]*$/d' "$STAGE/man/hnxdp.8" | gzip -9n -c >"$ROOT/usr/share/man/man8/hnxdp.8.gz"
# Maintainer: DEBFULLNAME/DEBEMAIL as for Debian's own tools, else the project's.
MAINTAINER="${DEBFULLNAME:-hnxdp maintainers} <${DEBEMAIL:-hnxdp@example.org}>"
cat >"$ROOT/usr/share/doc/hnxdp/copyright" <<EOF
hnxdp $VERSION: a transparent-VF datapath for Linux (eBPF datapath, Swift control plane).

Copyright (C) $(git log -1 --format=%cd --date=format:%Y 2>/dev/null || date -u +%Y) the hnxdp authors.
The binary contains the Swift runtime and standard library (Copyright Apple Inc.
and the Swift project authors; Apache License 2.0 with Runtime Library
Exception), swift-argument-parser, swift-log, swift-metrics, swift-prometheus
and swift-atomics (Copyright Apple Inc. and their authors; Apache License 2.0).
On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.
EOF
# A native package's changelog (one entry for the version; history is in git).
cat >"$STAGE/changelog" <<EOF
hnxdp ($VERSION) unstable; urgency=medium

  * hnxdp $VERSION.

 -- $MAINTAINER  $(date -u -R -d "$(git log -1 --format=%cI 2>/dev/null || date -u -Iseconds)")
EOF
gzip -9n -c "$STAGE/changelog" >"$ROOT/usr/share/doc/hnxdp/changelog.gz"
install -D -m 0644 packaging/debian/lintian-overrides "$ROOT/usr/share/lintian/overrides/hnxdp"
find "$ROOT" -type d -exec chmod 0755 {} +
find "$ROOT/usr/share" "$ROOT/etc" "$ROOT/lib" -type f -exec chmod 0644 {} +

SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat >"$ROOT/DEBIAN/control" <<EOF
Package: hnxdp
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $SIZE
Depends: $dep_line
Section: net
Priority: optional
Description: transparent-VF datapath (eBPF) and its control plane
 Makes an SR-IOV VF and the synthetic (paravirtual) interface with its MAC
 one interface: eBPF tcx programs steer traffic through the VF while it
 exists; hnxdp.service (hnxdp run) joins and leaves VFs as they come and go.
EOF
echo /etc/hnxdp/hnxdp.conf >"$ROOT/DEBIAN/conffiles"
# Maintainer scripts: enable/start the unit (deb-systemd-helper/-invoke), stop
# it on removal, reload udev's rules; purge removes /etc/hnxdp (packaging/debian).
for script in postinst prerm postrm; do
	install -m 0755 "packaging/debian/$script" "$ROOT/DEBIAN/$script"
done

(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$ROOT/DEBIAN/md5sums"
mkdir -p "$OUT"
DEB="$OUT/hnxdp_${VERSION}_$ARCH.deb"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$DEB" >&2
log "$(stat -c %s "$DEB") bytes; Depends: $dep_line; /usr/sbin/hnxdp $(stat -c %s "$ROOT/usr/sbin/hnxdp") bytes stripped"
echo "$(cd "$OUT" && pwd)/$(basename "$DEB")"
