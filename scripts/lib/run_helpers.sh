# shellcheck shell=bash
# run_helpers.sh - helpers for the `hnxdp run` tests (scripts/tests/7x-run-*.sh),
# on top of rig.sh. Source both, rig.sh first:
#
#   . "$(dirname "$0")/../lib/rig.sh"
#   . "$(dirname "$0")/../lib/run_helpers.sh"
#   rig_begin
#   rig_create
#   run_start RUN --synthetic hn0 --settle-ms 500   # hnxdp run in the guest
#   run_wait_dump 10 "hn0 active" "p and p['state'] == 'active'"
#   run_stop "$RUN"                                  # SIGTERM, expects exit 0
#
# The control plane under test:
#   run_start VAR ARGS...       start `hnxdp run ARGS` in the guest (nsenter, host
#                               mounts kept) in the background, bounded by
#                               RUN_MAX_SECONDS (default 300); VAR = pid of the
#                               hnxdp process itself (not of a wrapper); its
#                               stdout+stderr go to $RUN_LOG ($RIG_TMP/run-N.log).
#                               Waits for the "control plane running" line; a
#                               run that dies or never gets there is FAIL.
#   run_stop PID [SECONDS]      SIGTERM to that pid only; its exit code (124 on timeout)
#   run_kill9 PID               SIGKILL to that pid only; waits for it to be gone
#   run_alive PID               true while it runs
#   run_log_has REGEX [LOG]     grep -E on the run's log
#   run_log_reaction [LOG]      N of the last "reaction N us" line ("missing" if none)
#   run_assert_no_error DESC [LOG]  PASS when the log has no error line, else FAIL quoting them
#   run_bpf_fds PID             "progs maps links" BPF objects the process holds open
# Waiting on the pinned pair entry and write-ahead record (one python process,
# tools/pair_wait.py, answering one request line at a time; cheap enough for
# thousands of waits):
#   pw_start                    start it for hn0 (STATE_ROOT: the state directory)
#   pw REQUEST...               one wait (see pair_wait.py); PW_ANSWER; 0 when "ok"
# Waiting on `dump --json` (one python process polling `hnxdp dump --json`):
#   run_wait_dump SECS DESC COND [SYN] [--until-file F] [--interval S]
#                               poll until the python expression COND is true,
#                               with p = the pair of SYN (default hn0; None if
#                               absent), d = the whole dump. Sets RUN_SEEN (the
#                               distinct states seen, in order, comma-separated),
#                               RUN_WAIT_MS, RUN_LAST (last pair, short) and fails
#                               (FAIL line, returns 1) on timeout. With
#                               --until-file, stops (successfully) when F exists
#                               instead; COND may then be "False".
#   run_dump_watch_start SECS DESC COND [SYN] [...]  the same in the background
#   run_dump_watch_end          wait for it; sets/fails like run_wait_dump
#   run_state [SYN]             the pair's state from dump ("missing" when none)
#   run_pair_map                path of a file with the pinned pair map's name,
#                               value layout and state numbers (`dump --json`'s
#                               pair_map; fetched once per test, by run_start): the python
#                               helpers read the map by it
# Precise reaction times (a python process inside the guest netns that starts
# an action and polls the pinned pair map and the devices every ~2 ms):
#   run_react [--after-act] [--trace SYN] [--vanish DEV] SECS DESC ACTION COND...
#                               runs ACTION (a shell command, in the guest netns)
#                               and polls until every COND holds (with
#                               --after-act: only once ACTION has returned, for
#                               conditions that already hold before it). CONDs:
#                                 state:SYN=S   pair map state, by name as dump
#                                               prints it (active, idle, ...)
#                                 vf:SYN=N      pair map vf_ifindex (0: none)
#                                 mtu:DEV=N     device MTU
#                                 up:DEV=0|1 promisc:DEV=0|1 allmulti:DEV=0|1
#                                               requested device flags
#                                 absent:DEV    the device does not exist
#                               (SYN is a device name: its ifindex is looked up
#                               once, before ACTION.) Sets RUN_REACT_MS (ms from
#                               the start of ACTION until all held; "none" on
#                               timeout) and RUN_ACT_MS (how long ACTION took).
#                               With --vanish DEV, RUN_SINCE_VANISH_MS is the
#                               time from DEV vanishing from the namespace (the
#                               kernel unlists it, then sends RTM_DELLINK after
#                               an RCU grace period, while `ip link del` itself
#                               may take 30-100+ ms on a busy machine) until all
#                               CONDs held ("none" when not both observed).
#                               With --trace, RUN_TRACE lists the map states of
#                               SYN seen meanwhile: "settling@0,active@803" (ms).
#                               Returns 1 on timeout or when ACTION failed, 0
#                               otherwise (asserting on RUN_REACT_MS is the
#                               caller's job).
#   assert_ms_le DESC MS LIMIT  PASS when MS (decimal) <= LIMIT (integer ms)
#   run_assert_departure DESC SYN VF [LIMIT_MS] [COND...]
#                               delete VF and assert the pair reacted (default:
#                               SYN idle with no VF in the pinned map) within
#                               LIMIT_MS (default 100) of VF vanishing
# Devices:
#   run_vf_add_prepared CMD...  like rig_vf_add, but vf0 is made with a MAC of
#                               its own, each CMD (sh -c, in the guest) prepares
#                               it, and only then does it take $RIG_MAC: it is
#                               hn0's VF only once fully set up.
#   run_vf_prepare CMD...       the first half: vf0 made and prepared, MAC its own
#   run_vf_take_mac_cmd         the second half, as a shell command for run_react
#   run_vf_del [planned|surprise] delete vf0 (default surprise: host switched
#                               after), wait for vf0h to go
#   run_pair_add K              extra pair K (1..9): hnK (guest) <-> hnKh (host),
#                               vfK <-> vfKh, MAC run_pair_mac K, both up
#   run_pair_mac K              the MAC of extra pair K
#   run_vfk_add K | run_vfk_del K  VF of extra pair K back / away
#   run_xdp_limit_mtu HOSTDEV   native XDP (XDP_PASS, no frags) on a host-side
#                               veth end: the kernel lowers its guest peer's
#                               max_mtu to about 3500 (veth_xdp_set), a real
#                               "VF that refuses an MTU"
# Snapshots and BPF bookkeeping:
#   run_dev_snapshot DEV FILE   ethtool -k DEV plus MTU, flags and GSO/TSO/GRO
#                               limits of `ip -d -j link show DEV`
#   run_feature DEV NAME        on|off from ethtool -k
#   run_link_field DEV FIELD    one field of `ip -d -j link show DEV`
#   run_prog_ids                ids of the programs pinned in $RIG_PIN_DIR
#   run_our_links               "link_id prog_id" of every BPF link (any
#                               netns) whose program is one pinned in $RIG_PIN_DIR
#   run_global_counts           "progs maps links tcx_links": hnxdp_* programs
#                               and maps, links of hnxdp programs, type-11 links
#                               (machine-wide: other rigs count too)
#   run_other_rigs              number of other hnxdp pin namespaces / rigs alive
#   run_pins                    sorted listing of $RIG_PIN_DIR (relative)
# TCP:
#   run_tcp_client ARGS...      in the remote: bounded TCP echo client (same protocol as
#                               tcp_client.py) that keeps one connection echoing
#                               until --stop-file exists, then does --after more
#                               rounds; prints "rounds R after A max_gap_ms G";
#                               exit 0 only when every round was echoed intact.
#
# Every helper is bounded in time; nothing here kills anything but the pids it
# is given.

RUN_MAX_SECONDS=${RUN_MAX_SECONDS:-300}
RUN_N=0
RUN_LOG=""
RUN_SEEN=""
RUN_WAIT_MS=""
RUN_LAST=""
RUN_REACT_MS=""
RUN_ACT_MS=""
RUN_TRACE=""
RUN_SINCE_VANISH_MS=""
RUN_WATCH_PID=""
RUN_WATCH_FILE=""
declare -A RUN_WRAPPER=() # hnxdp pid -> pid of its `timeout` wrapper (our child)

# rig.sh may predate assert_global_eq (machine-wide checks, counted only
# with RIG_STRICT_GLOBAL=1): same meaning here.
if ! declare -F assert_global_eq >/dev/null; then
	RIG_STRICT_GLOBAL=${RIG_STRICT_GLOBAL:-$([[ -n "${CI:-}" ]] && echo 1 || echo 0)}
	assert_global_eq() {
		if [[ $RIG_STRICT_GLOBAL == 1 ]]; then
			assert_eq "$@"
		elif [[ "$2" == "$3" ]]; then
			pass "$1 ($2)"
		else
			echo "NOTE: $RIG_TEST: $1: got '$2', expected '$3' (not counted: RIG_STRICT_GLOBAL=0, other BPF users may be running)"
		fi
	}
fi

# ---------------------------------------------------------------- python

# One python program, several sub-commands (run as: python3 -c "$RUN_PY" CMD ...).
RUN_PY=$(cat <<'PYEOF'
import ctypes, ctypes.util, errno, fcntl, json, os, platform, select, socket, struct, subprocess, sys, time

def now_ms():
    return time.monotonic() * 1000.0

# ---- bpf(2) on pinned maps
SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351, "ppc64le": 361}.get(platform.machine(), 321)
libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def bpf(cmd, attr):
    r = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(cmd), attr, ctypes.c_uint(len(attr)))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r

def obj_get(path):
    p = ctypes.create_string_buffer(path.encode())
    attr = ctypes.create_string_buffer(struct.pack("=QII", ctypes.addressof(p), 0, 0), 128)
    return bpf(7, attr)  # BPF_OBJ_GET

def map_lookup(fd, key_bytes, value_size):
    k = ctypes.create_string_buffer(key_bytes, len(key_bytes))
    v = ctypes.create_string_buffer(value_size)
    attr = ctypes.create_string_buffer(struct.pack("=IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0), 128)
    try:
        bpf(1, attr)  # BPF_MAP_LOOKUP_ELEM
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise
    return v.raw

# The pair map's name, value layout and state numbers: from `hnxdp dump --json`
# (pair_map, see run_pair_map), never repeated here.
class PairMap:
    def __init__(self, path):
        with open(path) as f:
            m = json.load(f)
        self.name, self.size, self.states = m["name"], m["value_size"], m["states"]
        self.fields = m["fields"]
        self.names = {v: k for k, v in self.states.items()}

    def state(self, word):
        """A state given by name ("active") or number."""
        return self.states[word] if word in self.states else int(word)

    def field(self, value, name):
        f = self.fields[name]
        return int.from_bytes(value[f["offset"]:f["offset"] + f["size"]], sys.byteorder)

    def lookup(self, fd, ifindex):
        return map_lookup(fd, struct.pack("=I", ifindex), self.size)

# ---- device attributes by ioctl (in the current netns; /sys would be the host's)
SIOCGIFFLAGS, SIOCGIFMTU = 0x8913, 0x8921
_sock = None
def ifreq(dev, req):
    global _sock
    if _sock is None:
        _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    buf = struct.pack("16s24s", dev.encode(), b"")
    try:
        out = fcntl.ioctl(_sock.fileno(), req, buf)
    except OSError as e:
        if e.errno == errno.ENODEV:
            return None
        raise
    return struct.unpack_from("i", out, 16)[0]

FLAGS = {"up": 0x1, "promisc": 0x100, "allmulti": 0x200}

def cmd_react(args):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, required=True)
    ap.add_argument("--pins", required=True)
    ap.add_argument("--layout", required=True, help="the pair map's layout (run_pair_map)")
    ap.add_argument("--interval", type=float, default=0.002)
    ap.add_argument("--act", required=True)
    ap.add_argument("--after-act", action="store_true")
    ap.add_argument("--trace", default=None, help="record the pair map states of this synthetic")
    ap.add_argument("--vanish", default=None, help="also time from when this device vanished")
    ap.add_argument("conds", nargs="+")
    a = ap.parse_args(args)
    pm = PairMap(a.layout)
    pairs_fd = None
    checks = []
    for c in a.conds:
        kind, _, rest = c.partition(":")
        if kind == "absent":
            checks.append((c, lambda dev=rest: ifreq(dev, SIOCGIFMTU) is None))
            continue
        lhs, _, want = rest.partition("=")
        want = pm.state(want) if kind == "state" else int(want)
        if kind in ("state", "vf"):
            idx = socket.if_nametoindex(lhs)
            if pairs_fd is None:
                pairs_fd = obj_get(a.pins + "/" + pm.name)
            field = "state" if kind == "state" else "vf_ifindex"
            def f(idx=idx, field=field, want=want):
                v = pm.lookup(pairs_fd, idx)
                return v is not None and pm.field(v, field) == want
            checks.append((c, f))
        elif kind == "mtu":
            checks.append((c, lambda dev=lhs, want=want: ifreq(dev, SIOCGIFMTU) == want))
        elif kind in FLAGS:
            bit = FLAGS[kind]
            def f(dev=lhs, bit=bit, want=want):
                fl = ifreq(dev, SIOCGIFFLAGS)
                return fl is not None and bool(fl & bit) == bool(want)
            checks.append((c, f))
        else:
            print(f"react: unknown condition {c}", file=sys.stderr)
            return 2
    trace = []
    tracer = None
    if a.trace:
        tidx = socket.if_nametoindex(a.trace)
        if pairs_fd is None:
            pairs_fd = obj_get(a.pins + "/" + pm.name)
        def tracer(t):
            v = pm.lookup(pairs_fd, tidx)
            st = None if v is None else pm.field(v, "state")
            if not trace or trace[-1][0] != st:
                trace.append((st, t))
    gone_ms = None
    t0 = now_ms()
    if tracer:
        tracer(0.0)
    proc = subprocess.Popen(["sh", "-c", a.act])
    act_ms = None
    hit_ms = None
    deadline = t0 + a.timeout * 1000.0
    while True:
        if act_ms is None and proc.poll() is not None:
            act_ms = now_ms() - t0
        if a.vanish and gone_ms is None and ifreq(a.vanish, SIOCGIFMTU) is None:
            gone_ms = now_ms() - t0
        if tracer:
            tracer(now_ms() - t0)
        if hit_ms is None and (act_ms is not None or not a.after_act) and all(f() for _, f in checks):
            hit_ms = now_ms() - t0
        if hit_ms is not None and act_ms is not None:
            break
        if now_ms() > deadline:
            break
        time.sleep(a.interval)
    if act_ms is None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        act_ms = now_ms() - t0
    failing = [c for c, f in checks if not f()]
    names = {**pm.names, None: "none"}
    tr = ",".join(f"{names.get(st, st)}@{t:.0f}" for st, t in trace) or "-"
    since = "none" if hit_ms is None or gone_ms is None else "%.1f" % max(0.0, hit_ms - gone_ms)
    print(f"react {'%.1f' % hit_ms if hit_ms is not None else 'none'} {'%.1f' % act_ms} rc={proc.returncode} failing={','.join(failing) or '-'} trace={tr} since_vanish={since}")
    return 0 if hit_ms is not None and proc.returncode == 0 else 1

def cmd_dumpwait(args):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, required=True)
    ap.add_argument("--cond", required=True)
    ap.add_argument("--syn", default="hn0")
    ap.add_argument("--until-file", default=None)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args(args)
    t0 = now_ms()
    seen = []
    last = "none"
    ok = False
    n = 0
    while True:
        n += 1
        d = p = None
        try:
            r = subprocess.run(a.cmd, capture_output=True, timeout=20)
            if r.returncode == 0:
                d = json.loads(r.stdout)
                p = next((x for x in d.get("pairs", []) if (x.get("synthetic") or {}).get("name") == a.syn), None)
                last = "no pair" if p is None else f"state={p.get('state')} datapath={p.get('datapath')} vf={(p.get('vf') or {}).get('name')}"
            else:
                last = "dump failed: " + r.stderr.decode(errors="replace").strip().replace("\n", "|")[:200]
        except (subprocess.TimeoutExpired, ValueError) as e:
            last = f"dump error: {e}"
        st = (p or {}).get("state", "none") if d is not None else None
        if st is not None and (not seen or seen[-1] != st):
            seen.append(st)
        if d is not None:
            try:
                ok = bool(eval(a.cond, {}, {"p": p, "d": d}))
            except Exception as e:  # a condition on a missing field is simply false
                ok = False
        if ok:
            break
        if a.until_file and os.path.exists(a.until_file):
            ok = True
            break
        if now_ms() - t0 > a.timeout * 1000.0:
            break
        time.sleep(a.interval)
    print(f"{'ok' if ok else 'timeout'} {now_ms() - t0:.0f} {','.join(seen) or '-'} {n} {last}")
    return 0 if ok else 1

def cmd_tcpclient(args):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--dst", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--ready-file", default=None)
    ap.add_argument("--after", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-rounds", type=int, default=20000)
    a = ap.parse_args(args)
    fam = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    deadline = time.monotonic() + a.seconds
    done = after = 0
    max_gap = 0.0
    rc = 0
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(10.0)
        s.connect((a.dst, a.port))
    except OSError as e:
        print(f"tcp_client: connect to [{a.dst}]:{a.port}: {e}", file=sys.stderr)
        print(f"rounds 0 after 0 max_gap_ms 0", flush=True)
        return 2
    last = time.monotonic()
    try:
        while True:
            if time.monotonic() >= deadline:
                print(f"tcp_client: time bound hit after {done} rounds", file=sys.stderr)
                rc = 1
                break
            if done >= a.max_rounds:
                print(f"tcp_client: round bound hit ({done}) before the stop file", file=sys.stderr)
                rc = 1
                break
            stopping = os.path.exists(a.stop_file)
            if stopping and after >= a.after:
                break
            msg = bytes((done + j) & 0xFF for j in range(a.size))
            s.settimeout(max(0.1, deadline - time.monotonic()))
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    raise ConnectionError("connection closed by peer")
                got += chunk
            if got != msg:
                print(f"tcp_client: round {done}: echo differs", file=sys.stderr)
                rc = 1
                break
            t = time.monotonic()
            max_gap = max(max_gap, t - last)
            last = t
            done += 1
            if stopping:
                after += 1
            if done == 1 and a.ready_file:
                open(a.ready_file, "w").close()
            time.sleep(a.interval)
    except (OSError, ConnectionError) as e:
        print(f"tcp_client: round {done}: {e}", file=sys.stderr)
        rc = 1
    finally:
        s.close()
    print(f"rounds {done} after {after} max_gap_ms {max_gap * 1000:.0f}", flush=True)
    return rc

def cmd_xdppass(args):
    # Load "r0 = XDP_PASS; exit" and attach it in native (driver) mode by rtnetlink.
    dev = args[0]
    ifindex = socket.if_nametoindex(dev)
    insns = struct.pack("=BBhi", 0xb7, 0, 0, 2) + struct.pack("=BBhi", 0x95, 0, 0, 0)
    ibuf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    logbuf = ctypes.create_string_buffer(4096)
    name = b"hnxrig_xdp_pass"
    attr = struct.pack("=IIQQIIQI", 6, 2, ctypes.addressof(ibuf), ctypes.addressof(lic), 1, 4096, ctypes.addressof(logbuf), 0)
    attr += struct.pack("=I", 0) + name.ljust(16, b"\0")  # prog_flags (no XDP frags), prog_name
    a = ctypes.create_string_buffer(attr, 128)
    fd = bpf(5, a)  # BPF_PROG_LOAD
    # RTM_SETLINK, ifinfomsg, IFLA_XDP { IFLA_XDP_FD, IFLA_XDP_FLAGS = XDP_FLAGS_DRV_MODE }
    inner = struct.pack("=HHi", 8, 1, fd) + struct.pack("=HHI", 8, 3, 1 << 2)
    xdp = struct.pack("=HH", 4 + len(inner), 43 | 0x8000) + inner
    body = struct.pack("=BxHiII", 0, 0, ifindex, 0, 0) + xdp
    msg = struct.pack("=IHHII", 16 + len(body), 19, 0x1 | 0x4, 1, 0) + body
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    nl.bind((0, 0))
    nl.send(msg)
    resp = nl.recv(65536)
    os.close(fd)
    _, typ, _, _, _ = struct.unpack_from("=IHHII", resp, 0)
    if typ == 2:
        err = struct.unpack_from("=i", resp, 16)[0]
        if err != 0:
            print(f"xdppass: attach XDP on {dev}: {os.strerror(-err)}", file=sys.stderr)
            return 1
    return 0

if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"react": cmd_react, "dumpwait": cmd_dumpwait, "tcpclient": cmd_tcpclient, "xdppass": cmd_xdppass}[cmd](rest))
PYEOF
)

# ---------------------------------------------------------------- the control plane

run_start() {
	local __var=$1
	shift
	RUN_N=$((RUN_N + 1))
	RUN_LOG="$RIG_TMP/run-$RUN_N.log"
	# The pair map's layout now, not in the middle of a timed run_react.
	run_pair_map >/dev/null || fatal "no pair map layout from \`hnxdp dump --json\` ($(rig__short "$(cat "$RIG_TMP/pair_map.err")"))"
	# A simple command in the background: $! is timeout's pid; nsenter execs hnxdp
	# as timeout's child. timeout forwards SIGTERM, so rig_cleanup (which stops
	# the wrapper) also stops hnxdp; RUN_MAX_SECONDS bounds a forgotten one.
	timeout -k 5 "$RUN_MAX_SECONDS" nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" run "$@" \
		>"$RUN_LOG" 2>&1 &
	local wrapper=$! pid="" i exe
	RIG_BG_PIDS+=("$wrapper")
	for ((i = 0; i < 200; i++)); do
		pid=$(pgrep -P "$wrapper" 2>/dev/null | head -n 1 || true)
		if [[ -n "$pid" ]]; then
			exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
			[[ "$exe" == "$(readlink -f "$HNXDP")" ]] && break
		fi
		kill -0 "$wrapper" 2>/dev/null || break
		pid=""
		sleep 0.025
	done
	if [[ -z "$pid" ]]; then
		fatal "hnxdp run $* did not start: $(rig__short "$(cat "$RUN_LOG")")"
	fi
	RUN_WRAPPER[$pid]=$wrapper
	printf -v "$__var" '%s' "$pid"
	for ((i = 0; i < 300; i++)); do
		grep -q "control plane running" "$RUN_LOG" && break
		if ! kill -0 "$pid" 2>/dev/null; then
			fatal "hnxdp run $* exited at start: $(rig__short "$(cat "$RUN_LOG")")"
		fi
		sleep 0.05
	done
	grep -q "control plane running" "$RUN_LOG" \
		|| fatal "hnxdp run $* not running after 15 s: $(rig__short "$(cat "$RUN_LOG")")"
	note "hnxdp run $* (pid $pid, log $RUN_LOG)"
}

run_alive() { kill -0 "$1" 2>/dev/null; }

run_stop() { # PID [SECONDS] -> exit code of hnxdp run
	local pid=$1 secs=${2:-15} rc=0
	local wrapper=${RUN_WRAPPER[$pid]:-}
	[[ -n "$wrapper" ]] || fatal "run_stop: $pid was not started by run_start"
	kill -TERM "$pid" 2>/dev/null || true
	rig_wait_pid "$wrapper" "$secs" || rc=$?
	return "$rc"
}

run_kill9() {
	local pid=$1 wrapper=${RUN_WRAPPER[$1]:-}
	[[ -n "$wrapper" ]] || fatal "run_kill9: $pid was not started by run_start"
	kill -KILL "$pid" 2>/dev/null || true
	local i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$wrapper" 2>/dev/null || break
		sleep 0.05
	done
	{ wait "$wrapper"; } 2>/dev/null || true # reap quietly (no "Killed" job message)
	! kill -0 "$pid" 2>/dev/null
}

run_log_has() { grep -Eq -- "$1" "${2:-$RUN_LOG}"; }

# PASS when the run's log has no error line, else FAIL quoting them.
run_assert_no_error() { # DESC [LOG]
	local lines
	lines=$(grep -E '^[^ ]+ (error|critical) ' "${2:-$RUN_LOG}" || true)
	if [[ -z "$lines" ]]; then pass "$1"; else fail "$1: $(rig__short "$lines")"; fi
}

run_log_reaction() {
	local v
	v=$(grep -o 'reaction [0-9]* us' "${1:-$RUN_LOG}" | tail -n 1 | awk '{print $2}' || true)
	printf '%s\n' "${v:-missing}"
}

run_bpf_fds() { # PID -> "progs maps links"
	local p=0 m=0 l=0 f t
	for f in /proc/"$1"/fd/*; do
		t=$(readlink "$f" 2>/dev/null || true)
		case $t in
		anon_inode:bpf-prog) p=$((p + 1)) ;;
		anon_inode:bpf-map) m=$((m + 1)) ;;
		anon_inode:bpf_link | anon_inode:bpf-link) l=$((l + 1)) ;;
		esac
	done
	echo "$p $m $l"
}

# ---------------------------------------------------------------- dump conditions

run__dumpwait() { # SECS COND SYN EXTRA...: one line "ok|timeout MS SEEN N LAST"
	local secs=$1 cond=$2 syn=$3
	shift 3
	"$RIG_PY" -c "$RUN_PY" dumpwait --timeout "$secs" --cond "$cond" --syn "$syn" "$@" \
		-- timeout -k 5 30 nsenter --net="/run/netns/$RIG_GUEST" -- "$HNXDP" dump --json
}

run__dumpwait_parse() { # OUT RC DESC SECS
	local status ms seen n last
	read -r status ms seen n last <<<"$1"
	RUN_WAIT_MS=${ms:-none}
	RUN_SEEN=${seen:-}
	RUN_LAST=${last:-}
	if [[ $2 != 0 ]]; then
		fail "timed out after ${4}s waiting for: $3 (states seen: ${seen:-none}; last: ${last:-none})"
		return 1
	fi
	return 0
}

run_wait_dump() { # SECS DESC COND [SYN] [--until-file F] [--interval S]
	local secs=$1 desc=$2 cond=$3 syn=hn0 out rc=0
	shift 3
	if [[ $# -gt 0 && $1 != --* ]]; then syn=$1; shift; fi
	out=$(run__dumpwait "$secs" "$cond" "$syn" "$@") || rc=$?
	run__dumpwait_parse "$out" "$rc" "$desc" "$secs"
}

# The same, in the background: start now, collect with run_dump_watch_end.
run_dump_watch_start() { # SECS DESC COND [SYN] [--until-file F] [--interval S]
	local secs=$1 desc=$2 cond=$3 syn=hn0
	shift 3
	if [[ $# -gt 0 && $1 != --* ]]; then syn=$1; shift; fi
	RUN_WATCH_FILE="$RIG_TMP/watch-$RANDOM"
	RUN_WATCH_DESC=$desc
	RUN_WATCH_SECS=$secs
	run__dumpwait "$secs" "$cond" "$syn" "$@" >"$RUN_WATCH_FILE" &
	RUN_WATCH_PID=$!
	RIG_BG_PIDS+=("$RUN_WATCH_PID")
}

run_dump_watch_end() { # -> like run_wait_dump
	local rc=0
	rig_wait_pid "$RUN_WATCH_PID" $((RUN_WATCH_SECS + 30)) || rc=$?
	run__dumpwait_parse "$(cat "$RUN_WATCH_FILE")" "$rc" "$RUN_WATCH_DESC" "$RUN_WATCH_SECS"
}

run_state() { rig_dump_get "pairs[synthetic.name=${1:-hn0}].state"; }

# ---------------------------------------------------------------- reaction times

# The pinned pair map's layout (`dump --json`'s pair_map, from this build), in a
# file; fetched once per test (by run_start, so never during a timed wait).
run_pair_map() {
	local f="$RIG_TMP/pair_map.json"
	if [[ ! -s "$f" ]]; then
		hnxdp_g dump --json 2>"$RIG_TMP/pair_map.err" |
			"$RIG_PY" -c 'import json, sys; json.dump(json.load(sys.stdin)["pair_map"], sys.stdout)' >"$f.new" &&
			mv "$f.new" "$f" || { rm -f "$f.new"; return 1; }
	fi
	echo "$f"
}

run_react() { # [--after-act] [--trace SYN] [--vanish DEV] SECS DESC ACTION COND...
	local opts=()
	while [[ $1 == --* ]]; do
		case $1 in
		--after-act) opts+=(--after-act); shift ;;
		--trace) opts+=(--trace "$2"); shift 2 ;;
		--vanish) opts+=(--vanish "$2"); shift 2 ;;
		*) fatal "run_react: unknown option $1" ;;
		esac
	done
	local secs=$1 desc=$2 act=$3 out rc=0
	shift 3
	local layout
	layout=$(run_pair_map) || fatal "run_react: no pair map layout from \`hnxdp dump --json\`"
	out=$(nsenter --net="/run/netns/$RIG_GUEST" -- "$RIG_PY" -c "$RUN_PY" react --timeout "$secs" \
		--pins "$RIG_PIN_DIR" --layout "$layout" --act "$act" "${opts[@]}" "$@" 2>"$RIG_TMP/react.err") || rc=$?
	local word hit act_ms arc failing trace since
	read -r word hit act_ms arc failing trace since <<<"$out"
	RUN_REACT_MS=${hit:-none}
	RUN_ACT_MS=${act_ms:-none}
	RUN_TRACE=${trace#trace=}
	RUN_SINCE_VANISH_MS=${since#since_vanish=}
	if [[ $rc != 0 ]]; then
		note "$desc: not reached within ${secs}s ($out; $(rig__short "$(cat "$RIG_TMP/react.err")"))"
		return 1
	fi
	local extra=""
	[[ -z "${RUN_SINCE_VANISH_MS:-}" || "$RUN_SINCE_VANISH_MS" == none ]] || extra=", ${RUN_SINCE_VANISH_MS} ms after the device vanished"
	note "$desc: reached ${RUN_REACT_MS} ms after the action started$extra (the action took ${RUN_ACT_MS} ms)"
	return 0
}

# True when the measured time (ms, decimal) is <= the limit (ms, integer).
run_ms_le() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

assert_ms_le() { # DESC MS LIMIT
	if run_ms_le "$2" "$3"; then pass "$1 (${2} ms <= $3 ms)"; else fail "$1: took '${2}' ms, limit $3 ms"; fi
}

# A departure, timed: delete VF (in the guest) and assert that every COND
# (default: SYN idle with no VF in the pinned map) held within LIMIT ms of
# the VF vanishing from the namespace. Prints the time from the start of
# `ip link del` too.
run_assert_departure() { # DESC SYN VF [LIMIT_MS] [COND...]
	local desc=$1 syn=$2 vf=$3 limit=${4:-100}
	shift 3
	(($# == 0)) || shift
	local conds=("$@")
	((${#conds[@]} > 0)) || conds=("state:$syn=idle" "vf:$syn=0")
	if run_react --vanish "$vf" --trace "$syn" 3 "$desc" "ip link del $vf" "${conds[@]}"; then
		assert_ms_le "$desc: within $limit ms of $vf vanishing (${RUN_REACT_MS} ms after \`ip link del\` started)" \
			"$RUN_SINCE_VANISH_MS" "$limit"
	else
		fail "$desc: not reached within 3 s of deleting $vf (${conds[*]}; map states: $RUN_TRACE)"
	fi
}

# ---------------------------------------------------------------- devices

run_vf_prepare() {
	if ip -n "$RIG_GUEST" link show dev vf0 >/dev/null 2>&1; then
		fatal "run_vf_prepare: vf0 already exists"
	fi
	ip -n "$RIG_GUEST" link add vf0 type veth peer name vf0h netns "$RIG_HOST"
	local c
	for c in "$@"; do rig_g sh -c "$c"; done
	ip -n "$RIG_HOST" link set vf0h up
	rig__host_forward vf0h
}

# The shell command (for the guest netns) that makes a prepared vf0 hn0's VF.
run_vf_take_mac_cmd() {
	if [[ $RIG_VF_UP == 1 ]]; then
		echo "ip link set vf0 address $RIG_MAC && ip link set vf0 up"
	else
		echo "ip link set vf0 address $RIG_MAC"
	fi
}

run_vf_add_prepared() {
	run_vf_prepare "$@"
	rig_g sh -c "$(run_vf_take_mac_cmd)"
}

run_vf_del() {
	case ${1:-surprise} in
	planned) rig_vf_remove_planned ;;
	surprise) rig_vf_remove_surprise ;;
	*) fatal "run_vf_del: planned or surprise, got '$1'" ;;
	esac
}

run_pair_mac() { # K -> MAC of extra pair K (RIG_MAC with the 3rd byte 4f and K last)
	printf '02:48:4f:%s:%02x\n' "${RIG_MAC:12:5}" "$1"
}

run_pair_add() {
	local k=$1 mac
	mac=$(run_pair_mac "$k")
	ip -n "$RIG_GUEST" link add "hn$k" type veth peer name "hn${k}h" netns "$RIG_HOST"
	ip -n "$RIG_GUEST" link set "hn$k" address "$mac"
	ip -n "$RIG_HOST" link set "hn${k}h" up
	ip -n "$RIG_GUEST" link set "hn$k" up
	run_vfk_add "$k"
}

run_vfk_add() {
	local k=$1 mac
	mac=$(run_pair_mac "$k")
	ip -n "$RIG_GUEST" link add "vf$k" type veth peer name "vf${k}h" netns "$RIG_HOST"
	ip -n "$RIG_GUEST" link set "vf$k" address "$mac"
	ip -n "$RIG_HOST" link set "vf${k}h" up
	ip -n "$RIG_GUEST" link set "vf$k" up
}

run_vfk_del() {
	local k=$1 i=0
	ip -n "$RIG_GUEST" link del "vf$k"
	while ip -n "$RIG_HOST" link show dev "vf${k}h" >/dev/null 2>&1; do
		i=$((i + 1))
		((i < 100)) || fatal "vf${k}h still present 5 s after deleting vf$k"
		sleep 0.05
	done
}

run_xdp_limit_mtu() {
	nsenter --net="/run/netns/$RIG_HOST" -- "$RIG_PY" -c "$RUN_PY" xdppass "$1"
}

# ---------------------------------------------------------------- snapshots, BPF

run_feature() { rig_g ethtool -k "$1" | sed -n "s/^[[:space:]]*$2: \([a-z]*\).*/\1/p"; }

run_link_field() { ip -n "$RIG_GUEST" -d -j link show dev "$1" | rig_json --default missing "[0].$2"; }

run_dev_snapshot() { # DEV FILE
	{
		echo "## ethtool -k $1"
		rig_g ethtool -k "$1"
		echo "## ip -d -j link show $1 (selected fields)"
		ip -n "$RIG_GUEST" -d -j link show dev "$1" | "$RIG_PY" -c '
import json, sys
l = json.load(sys.stdin)[0]
for k in ("mtu", "flags", "operstate", "min_mtu", "max_mtu", "gso_max_size", "gso_max_segs",
          "gso_ipv4_max_size", "tso_max_size", "tso_max_segs", "gro_max_size", "gro_ipv4_max_size",
          "promiscuity", "allmulti", "address"):
    print(k, json.dumps(l.get(k)))'
	} >"$2" 2>&1
}

run_prog_ids() {
	local p
	for p in hnxdp_vf_ingress hnxdp_syn_ingress hnxdp_syn_egress; do
		[[ -e "$RIG_PIN_DIR/$p" ]] || continue
		bpftool -j prog show pinned "$RIG_PIN_DIR/$p" | rig_json id
	done
}

run_our_links() {
	local ids
	ids=$(run_prog_ids | tr '\n' ' ')
	bpftool -j link show 2>/dev/null | "$RIG_PY" -c '
import json, sys
ids = set(int(x) for x in sys.argv[1].split())
for l in sorted(json.load(sys.stdin), key=lambda l: l["id"]):
    if l.get("prog_id") in ids:
        print(l["id"], l.get("prog_id"))' "$ids"
}

run_global_counts() {
	local progs maps links
	progs=$(bpftool -j prog show 2>/dev/null || echo '[]')
	maps=$(bpftool -j map show 2>/dev/null || echo '[]')
	links=$(bpftool -j link show 2>/dev/null || echo '[]')
	"$RIG_PY" -c '
import json, sys
progs = json.loads(sys.argv[1] or "[]")
maps = json.loads(sys.argv[2] or "[]")
links = json.loads(sys.argv[3] or "[]")
hp = {p["id"] for p in progs if p.get("name", "").startswith("hnxdp")}
print(len(hp), sum(1 for m in maps if m.get("name", "").startswith("hnxdp")),
      sum(1 for l in links if l.get("prog_id") in hp),
      sum(1 for l in links if str(l.get("type")) in ("11", "tcx")))' "$progs" "$maps" "$links"
}

run_other_rigs() {
	local n=0 f root=${HNXDP_BPFFS:-/sys/fs/bpf/hnxdp}
	for f in /run/netns/hnxrig-*-guest; do
		[[ -e "$f" && "$f" != "/run/netns/$RIG_GUEST" ]] && n=$((n + 1))
	done
	for f in "$root"/*; do
		[[ -e "$f" && "$f" != "$RIG_PIN_DIR" ]] && n=$((n + 1))
	done
	echo "$n"
}

run_pins() {
	if [[ -e "$RIG_PIN_DIR" ]]; then (cd "$RIG_PIN_DIR" && find . | sort | tr '\n' ' '); else echo absent; fi
}

# ---------------------------------------------------------------- TCP

run_tcp_client() { rig_r "$RIG_PY" -c "$RUN_PY" tcpclient "$@"; }

# ---------------------------------------------------------------- pair waiter
pw_start() {
	local layout
	layout=$(run_pair_map) || fatal "pw_start: no pair map layout from \`hnxdp dump --json\`"
	coproc PW { exec nsenter --net="/run/netns/$RIG_GUEST" -- "$RIG_PY" "$RIG_TOOLS/pair_wait.py" \
		--pins "$RIG_PIN_DIR" --layout "$layout" --records "${STATE_ROOT:-${HNXDP_STATE_DIR:-/run/hnxdp}}/$RIG_GUEST_INO" --syn hn0 --seconds "$RUN_MAX_SECONDS" \
		2>"$RIG_TMP/pair_wait.err"; }
	RIG_BG_PIDS+=("$PW_PID")
	PW_IN=${PW[1]}
	PW_OUTFD=${PW[0]}
}
pw() { # REQUEST... -> PW_ANSWER; 0 when "ok"
	PW_ANSWER="no answer"
	echo "$*" >&"$PW_IN" || return 1
	read -r -t 60 PW_ANSWER <&"$PW_OUTFD" || PW_ANSWER="no answer ($(rig__short "$(cat "$RIG_TMP/pair_wait.err")"))"
	[[ "$PW_ANSWER" == ok* ]]
}
