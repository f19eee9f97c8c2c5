#!/usr/bin/env bash
# 97-package: the Debian package of scripts/package.sh installs a hnxdp that
# works without the Swift toolchain (issue 12).
#   1. scripts/package.sh builds dist/hnxdp_<version>_<arch>.deb (release,
#      static Swift runtime); its build time is printed.
#   2. dpkg-deb -I: Version is `hnxdp --version`'s, Depends names libbpf1,
#      libxdp1, libelf1, zlib1g and libc6 (>= N); conffiles is exactly
#      /etc/hnxdp/hnxdp.conf. dpkg-deb -c: the binary, unit, config,
#      bash/zsh/fish completions and man page at their Debian paths.
#   3. dpkg -x into a throw-away root: /usr/sbin/hnxdp is stripped and links
#      no Swift library; completions and man page are there; the example
#      config sets nothing (every line a comment) and, uncommented, parses;
#      hnxdp.service passes `systemd-analyze verify` with no message; the udev
#      rule and the networkd file are packaging/'s, at their Debian paths.
#      The maintainer scripts (postinst, prerm, postrm) are there and parse,
#      enable/start/stop the unit with deb-systemd-helper/-invoke, reload udev,
#      remove /etc/hnxdp on purge and never name /run/hnxdp; lintian reports no
#      error or warning (packaging/debian/lintian-overrides: the deliberate ones).
#   4. The packaged binary runs in a mount namespace where the toolchain's
#      directory (from `command -v swift`) is an empty directory: --version,
#      `status --json` in the guest network namespace, then attach, traffic
#      through the VF, detach (rig with HNXDP = that wrapper).
# Environment: HNXDP_PACKAGE_SCRATCH (package.sh --scratch-path; default .build).
. "$(dirname "$0")/../lib/rig.sh"

PKG_DIR=$(mktemp -d /tmp/hnxdp-97-package.XXXXXX)
chmod 0755 "$PKG_DIR" # the binary is also run as nobody
# The rig's EXIT handler, then this test's directory.
trap 'rc=$?; rm -rf "$PKG_DIR"; (exit $rc); rig__on_exit' EXIT
ROOT="$PKG_DIR/root"
EMPTY="$PKG_DIR/empty"
mkdir -p "$ROOT" "$EMPTY"
SWIFT=$(command -v swift) || { echo "FAIL: $RIG_TEST: no swift on PATH"; exit 1; }
TOOLCHAIN=$(cd "$(dirname "$(readlink -f "$SWIFT")")/.." && pwd)
[[ "$TOOLCHAIN" != / && "$TOOLCHAIN" != /usr ]] || { echo "FAIL: $RIG_TEST: toolchain at $TOOLCHAIN cannot be hidden"; exit 1; }
# The packaged hnxdp, with the toolchain's directory hidden (a private mount namespace).
WRAPPER="$PKG_DIR/hnxdp-packaged"
cat >"$WRAPPER" <<EOF
#!/bin/sh
exec unshare --mount --propagation private sh -c 'mount --bind "\$1" "\$2" && shift 2 && exec "\$@"' _ \\
	"$EMPTY" "$TOOLCHAIN" "$ROOT/usr/sbin/hnxdp" "\$@"
EOF
chmod +x "$WRAPPER"

# ---- 1. build the package (before rig_begin: it checks HNXDP exists).
t0=$SECONDS
if ! DEB=$("$RIG_REPO/scripts/package.sh" --scratch-path "${HNXDP_PACKAGE_SCRATCH:-.build}" --out "$PKG_DIR/dist" 2>"$PKG_DIR/package.log" | tail -n 1); then
	tail -n 30 "$PKG_DIR/package.log"
	echo "FAIL: $RIG_TEST: scripts/package.sh failed"
	exit 1
fi
echo "  .. package.sh: $((SECONDS - t0)) s ($(grep -m 1 'built in' "$PKG_DIR/package.log" || true)): $DEB"
dpkg -x "$DEB" "$ROOT"
HNXDP=$WRAPPER

rig_begin
RIG_TOOLS_NEEDED+=(dpkg-deb objdump readelf unshare systemd-analyze)
rig_require_tools "${RIG_TOOLS_NEEDED[@]}"
pass "scripts/package.sh built $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"

# ---- 2. control fields, conffiles, contents.
field() { dpkg-deb -f "$DEB" "$1"; }
VERSION=$("$ROOT/usr/sbin/hnxdp" --version | awk '{ print $2 }')
assert_eq "Package" "$(field Package)" hnxdp
assert_eq "Version is hnxdp --version's" "$(field Version)" "$VERSION"
deps=$(field Depends)
for dep in libbpf1 libxdp1 libelf1 zlib1g "libc6 (>= "; do
	assert_contains "Depends names $dep" "$deps" "$dep"
done
assert_not_contains "Depends names no Swift package" "$deps" swift
assert_eq "conffiles" "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles)" /etc/hnxdp/hnxdp.conf
contents=$(dpkg-deb -c "$DEB" | awk '{ print $1, $6 }')
for entry in "-rwxr-xr-x ./usr/sbin/hnxdp" "-rw-r--r-- ./lib/systemd/system/hnxdp.service" \
	"-rw-r--r-- ./lib/systemd/system/hnxdp-bpffs.service" \
	"-rw-r--r-- ./etc/hnxdp/hnxdp.conf" "-rw-r--r-- ./usr/share/bash-completion/completions/hnxdp" \
	"-rw-r--r-- ./usr/share/zsh/vendor-completions/_hnxdp" "-rw-r--r-- ./usr/share/fish/vendor_completions.d/hnxdp.fish" \
	"-rw-r--r-- ./usr/share/man/man8/hnxdp.8.gz" "-rw-r--r-- ./usr/lib/udev/rules.d/81-hnxdp.rules" \
	"-rw-r--r-- ./usr/lib/systemd/network/05-hnxdp-vf.network"; do
	if grep -qxF -- "$entry" <<<"$contents"; then pass "contains $entry"; else fail "missing $entry"; fi
done
owners=$(dpkg-deb -c "$DEB" | awk '{ print $2 }' | sort -u | tr '\n' ' ')
assert_eq "every file owned by root/root" "$owners" "root/root "

# ---- 3. the installed tree.
BIN="$ROOT/usr/sbin/hnxdp"
assert_eq "binary stripped (no .symtab)" "$(readelf -S "$BIN" | grep -c '\.symtab' || true)" 0
assert_eq "binary links no Swift library" "$(objdump -p "$BIN" | grep NEEDED | grep -c swift || true)" 0
note "binary: $(stat -c %s "$BIN") bytes; needs $(objdump -T "$BIN" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -n 1)"
assert_contains "bash completion is one" "$(head -n 5 "$ROOT/usr/share/bash-completion/completions/hnxdp")" "hnxdp"
assert_contains "zsh completion" "$(head -n 1 "$ROOT/usr/share/zsh/vendor-completions/_hnxdp")" "#compdef hnxdp"
assert_contains "man page" "$(zcat "$ROOT/usr/share/man/man8/hnxdp.8.gz" | head -n 20)" ".Dt HNXDP 8"
assert_eq "the example config sets nothing (every line a comment)" \
	"$(grep -Ev '^[[:space:]]*(#|$)' "$ROOT/etc/hnxdp/hnxdp.conf" || true)" ""
for key in synthetic settle-ms hold-down-ms flap-threshold transparent metrics-listen metrics-textfile; do
	assert_contains "the example config documents $key" "$(cat "$ROOT/etc/hnxdp/hnxdp.conf")" "#$key = "
done
# Uncommented, the example's values are all valid (run parses the file before it needs privileges or bpffs).
sed -E 's/^#([a-z-]+ = )/\1/' "$ROOT/etc/hnxdp/hnxdp.conf" >"$PKG_DIR/uncommented.conf"
rig_try setpriv --inh-caps=-all --bounding-set=-all --reuid=65534 --regid=65534 --clear-groups "$BIN" run --config "$PKG_DIR/uncommented.conf"
assert_not_contains "the example config, uncommented, parses" "$RIG_ERR" "invalid config"
assert_contains "...and run then asks for privileges (nobody)" "$RIG_ERR" "needs CAP_NET_ADMIN"
# systemd-analyze verify wants ExecStart's binary to exist: the unit with the throw-away root's path.
# It requires hnxdp-bpffs.service (bpffs in the system's mount namespace): verified beside it.
sed "s|/usr/sbin/hnxdp|$BIN|" "$ROOT/lib/systemd/system/hnxdp.service" >"$PKG_DIR/hnxdp.service"
cp "$ROOT/lib/systemd/system/hnxdp-bpffs.service" "$PKG_DIR/"
rig_try systemd-analyze verify --man=no "$PKG_DIR/hnxdp.service" "$PKG_DIR/hnxdp-bpffs.service"
assert_eq "systemd-analyze verify hnxdp.service hnxdp-bpffs.service exits 0" "$RIG_RC" 0
assert_eq "systemd-analyze verify hnxdp.service hnxdp-bpffs.service: no message" "$RIG_OUT$RIG_ERR" ""
unit=$(cat "$ROOT/lib/systemd/system/hnxdp.service")
for line in "Type=notify" "ExecStart=/usr/sbin/hnxdp run" "ExecReload=/bin/kill -HUP \$MAINPID" "WatchdogSec=" \
	"RuntimeDirectoryPreserve=yes" "ProtectSystem=strict" "ReadWritePaths=/sys/fs/bpf /run/hnxdp" "LimitMEMLOCK=infinity" \
	"Requires=hnxdp-bpffs.service" "SystemCallFilter=@system-service bpf" "SystemCallArchitectures=native" \
	"RestrictAddressFamilies=AF_NETLINK AF_UNIX AF_INET AF_INET6" "RestrictNamespaces=yes" \
	"MemoryDenyWriteExecute=yes" "PrivateDevices=yes" "UMask=0077"; do
	assert_contains "hnxdp.service has $line" "$unit" "$line"
done

# ---- 3b. maintainer scripts and lintian.
for script in postinst prerm postrm; do
	body=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO "./$script" 2>/dev/null || true)
	assert_contains "$script is in the package" "$body" "#!/bin/sh"
	rig_try sh -n -c "$body"
	assert_eq "$script: sh -n" "$RIG_RC" 0
done
post=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./postinst)
assert_contains "postinst enables the unit the Debian way" "$post" "deb-systemd-helper enable hnxdp.service"
assert_contains "postinst starts or restarts it with deb-systemd-invoke" "$post" 'deb-systemd-invoke "$action" hnxdp.service'
assert_contains "postinst reloads udev's rules" "$post" "udevadm control --reload-rules"
assert_contains "prerm stops the unit on remove" "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./prerm)" "deb-systemd-invoke stop hnxdp.service"
postrm=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./postrm)
assert_contains "postrm removes /etc/hnxdp on purge" "$postrm" "rm -rf /etc/hnxdp"
assert_not_contains "no maintainer script touches /run/hnxdp (the write-ahead records)" \
	"$(printf '%s\n' "$post" "$postrm" "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./prerm)" | grep -v '^[[:space:]]*#')" "/run/hnxdp"
# lintian (run as nobody, as it prefers): no error or warning; deliberate
# exceptions are in packaging/debian/lintian-overrides, shipped in the package.
cp "$DEB" "$PKG_DIR/lintian.deb"
chmod 0644 "$PKG_DIR/lintian.deb"
rig_try setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/nonexistent \
	lintian --tag-display-limit 0 --show-overrides --fail-on error,warning "$PKG_DIR/lintian.deb"
assert_eq "lintian: no error or warning (output: $(tr '\n' '|' <<<"$RIG_OUT$RIG_ERR" | cut -c1-600))" "$RIG_RC" 0
note "lintian: $(grep -c '^[EW]:' <<<"$RIG_OUT" || true) errors/warnings, $(grep -c '^O:' <<<"$RIG_OUT" || true) overridden"

# The udev rule and networkd file (what they do: test 91): as in packaging/, calling the packaged binary.
assert_files_equal "81-hnxdp.rules is packaging/udev's" "$ROOT/usr/lib/udev/rules.d/81-hnxdp.rules" "$RIG_REPO/packaging/udev/81-hnxdp.rules"
assert_files_equal "05-hnxdp-vf.network is packaging/network's" "$ROOT/usr/lib/systemd/network/05-hnxdp-vf.network" "$RIG_REPO/packaging/network/05-hnxdp-vf.network"
assert_contains "the rule imports from the packaged binary" "$(cat "$ROOT/usr/lib/udev/rules.d/81-hnxdp.rules")" 'IMPORT{program}="/usr/sbin/hnxdp udev '

# ---- 4. the packaged binary without the toolchain.
hidden=$(unshare --mount --propagation private sh -c 'mount --bind "$0" "$1" && ls -A "$1"' "$EMPTY" "$TOOLCHAIN" 2>&1 || echo "mount failed")
assert_eq "the wrapper's mount namespace shows $TOOLCHAIN empty" "$hidden" ""
rig_try "$WRAPPER" --version
assert_eq "packaged hnxdp --version without the toolchain (stderr: $RIG_ERR)" "$RIG_OUT" "hnxdp $VERSION"
rig_try env -u LD_LIBRARY_PATH LD_DEBUG=libs "$WRAPPER" --version
assert_contains "LD_DEBUG shows the libraries hnxdp loads" "$RIG_ERR" "libbpf.so.1"
assert_not_contains "no library loaded from $TOOLCHAIN" "$RIG_ERR" "$TOOLCHAIN"

rig_create
rig_try hnxdp_g status --json
assert_eq "status --json in the guest exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
assert_eq "status --json: version" "$(rig_json version <<<"$RIG_OUT")" "$VERSION"
rig_try hnxdp_g attach --synthetic hn0 --vf vf0
assert_eq "packaged attach hn0/vf0 exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
rig_host_switch vf
assert_eq "dump: pair active" "$(rig_dump_get 'pairs[synthetic.name=hn0].state')" active
N=100
rx0=$(rig_stat vf_rx_packets)
rig_count_udp "through the VF" 5197 "$N"
rx1=$(rig_stat vf_rx_packets)
if [[ "$rx0$rx1" =~ ^[0-9]+$ ]]; then
	assert_ge "vf_rx_packets rose by the datagrams sent" "$((rx1 - rx0))" "$N"
else
	fail "vf_rx_packets unreadable ($rx0, $rx1)"
fi
rig_try hnxdp_g detach --synthetic hn0
assert_eq "packaged detach exits 0 (stderr: $RIG_ERR)" "$RIG_RC" 0
if [[ ! -e "$RIG_PIN_DIR" ]]; then pass "no pin directory left after detach"; else fail "pin directory left: $(ls -A "$RIG_PIN_DIR" | tr '\n' ' ')"; fi

rig_finish
