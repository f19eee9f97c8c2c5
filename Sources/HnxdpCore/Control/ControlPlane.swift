import CHnxdpShim
import Glibc
import Logging

/// Settings of `hnxdp run` (command line or `--config` file).
public struct RunSettings: Equatable, Sendable {
    /// Synthetic interfaces to manage by name; empty: every eligible one
    /// (devices driven by a paravirtual driver, see `PairingPolicy.defaultSyntheticDrivers`,
    /// and every pair already pinned in this namespace).
    public var synthetics: [String] = []
    /// Drivers whose devices `run` manages as synthetics when no --synthetic is named;
    /// empty: `PairingPolicy.defaultSyntheticDrivers` (virtio_net).
    public var syntheticDrivers: [String] = []
    /// The drivers in use: `syntheticDrivers`, or the default.
    public var effectiveSyntheticDrivers: Set<String> {
        syntheticDrivers.isEmpty ? PairingPolicy.defaultSyntheticDrivers : Set(syntheticDrivers)
    }
    public var timing = PairTiming()
    /// B3: when off, VFs are only reported.
    public var transparent = true
    /// Metrics endpoint and textfile (off by default; docs/metrics.md).
    public var metrics = MetricsSettings()

    public init() {}
}

/// `hnxdp run`: the long-running, event-driven control plane (B1..B3, B7,
/// B10..B16, B19). This is its event loop: it owns the sockets (rtnetlink link
/// notifications, multicast-address and tc notifications, inotify on the pins),
/// the signalfd, the timers and the service manager's notifications, and hands
/// what it receives to the reconciler (`PairReconciler`, Reconciler.swift: which
/// pairs exist, adoption, the state machines and their actions) and its
/// joined-pair policy (JoinedPairPolicy.swift). It never polls: it sleeps in
/// poll(2) until a notification, a signal or its next timer.
public final class ControlPlane {

    /// Replaced by a SIGHUP reload (`reload()`), within what `RunReload` allows.
    var settings: RunSettings { reconciler.settings }
    /// Where SIGHUP reads the settings again: a description for log lines (the
    /// config file) and the reader (the file with the command line over it).
    /// nil: nothing to reload, SIGHUP only says so.
    public var reloadSource: (description: String, read: () throws -> RunSettings)?
    var reloadRequested = false
    let layout: PinLayout
    let logger: Logger
    let netlink: RTNetlink
    let datapath: Datapath
    /// Desired against actual, and the state machines: everything the events change.
    let reconciler: PairReconciler
    let clock: ControlClock = MonotonicClock()
    let signalFD: Int32
    /// One control plane per network namespace: held for the whole run.
    let instance: PidLock
    /// inotify on the pin directories: pins removed under us (`rm`, bpffs
    /// unmounted) are noticed at once and made again, or the pairs undone.
    /// Removals under the pin directories (PinWatch.swift); nil where inotify is unavailable.
    var pinWatch: Inotify?

    /// Next multicast-list comparison (monotonic ms): the kernel sends no
    /// notification for link-layer multicast changes, so while a pair is
    /// joined the lists are compared every `multicastIntervalMs`.
    var multicastDeadline: UInt64 = 0
    /// Link-layer multicast lists have no kernel notification; IP multicast joins
    /// do (RTNLGRP_IPV4/IPV6_MCADDR, kernel 6.13+) and are handled at once. What
    /// remains (`ip maddr add`, SIOCADDMULTI) is caught by comparing the lists every
    /// `multicastIntervalMs` while a pair is joined: 1 s with notifications, 80 ms
    /// on a kernel without them.
    var multicastIntervalMs: UInt64 = 1000
    /// Socket joined to the multicast-address notification groups, or -1.
    var multicastEventsFD: Int32 = -1
    /// The last /proc/self/net/dev_mcast read: nothing is parsed while it is unchanged.
    var multicastSnapshot: [UInt8] = []
    /// The service manager's notification socket (`NOTIFY_SOCKET`), nil when
    /// not started by one: READY/RELOADING/STOPPING/WATCHDOG (`ServiceNotifier`).
    public var notifier: ServiceNotifier?
    /// Where departure reactions and join durations are observed as histograms
    /// (`--metrics-listen`, `--metrics-textfile`); nil: metrics off.
    public var observations: RunObservations? {
        get { reconciler.observations }
        set { reconciler.observations = newValue }
    }
    /// Socket joined to RTNLGRP_TC (qdisc, class and filter notifications), or -1.
    var tcEventsFD: Int32 = -1
    /// When to compare the joined pairs' egress configurations (monotonic ms): a
    /// burst of tc notifications (one `tc` command makes several) is handled once,
    /// `qdiscDebounceMs` after its first.
    var qdiscDeadline: UInt64?
    /// When to check the pins after removals were seen (monotonic ms): `pinSettleMs`
    /// after the last removal event.
    var pinCheckDeadline: UInt64?
    static let pinSettleMs: UInt64 = 100
    static let qdiscDebounceMs: UInt64 = 50

    public init(settings: RunSettings, layout: PinLayout, logger: Logger, tcMode: TcModeRequest = .auto) throws {
        self.layout = layout
        self.logger = logger
        let lifecycle = PairLifecycle(layout: layout, logger: logger, tcMode: tcMode)
        // Before anything is touched: a second control plane in the namespace would
        // join every VF twice.
        let state = StateDirectory.of(layout)
        let instance = try state.acquireInstance(what: "run") {
            HnxdpError(.badInput, "another hnxdp run (pid \($0)) already manages this network namespace; stop it first (lock \(state.instanceLockPath))")
        }
        self.instance = instance
        // A start that fails below (other pins, no netlink...) leaves no lock file behind.
        var started = false
        defer { if !started { instance.release(removeFile: true) } }
        // Subscribe before the first dump so nothing between the two is missed.
        self.netlink = try RTNetlink(subscribeToLinks: true)
        let lock = try InvocationLock(layout: layout, what: "run", waiting: { logger.warning("\($0)") })
        let datapath = try Datapath.openOrCreate(layout).0
        self.datapath = datapath
        withExtendedLifetime(lock) {}
        self.reconciler = PairReconciler(settings: settings, logger: logger, netlink: netlink, features: EthtoolFeatures(),
                                         store: PinnedPairStore(datapath: datapath, lifecycle: lifecycle),
                                         devices: KernelDeviceChanges(lifecycle: lifecycle, netlink: netlink, datapath: datapath),
                                         clock: clock)
        let fd = hnxdp_termination_signalfd()
        if fd < 0 { throw HnxdpError.system("set up signal handling", errno: -fd) }
        self.signalFD = fd
        var groups: [UInt32] = [UInt32(HNXDP_RTNLGRP_IPV4_MCADDR), UInt32(HNXDP_RTNLGRP_IPV6_MCADDR)]
        let mfd = hnxdp_netlink_group_socket(&groups, UInt32(groups.count))
        pinWatch = try? Inotify()
        var tcGroup: [UInt32] = [TrafficControlCodec.notificationGroup]
        let tfd = hnxdp_netlink_group_socket(&tcGroup, 1)
        if tfd >= 0 {
            tcEventsFD = tfd
        } else {
            logger.warning("no tc notifications (\(errnoName(-tfd))): changes of a synthetic's qdiscs while joined are not followed")
        }
        if mfd >= 0 {
            multicastEventsFD = mfd
        } else {
            multicastIntervalMs = 80
            logger.info("no multicast address notifications on this kernel (\(errnoName(-mfd))): comparing multicast lists every \(multicastIntervalMs) ms while a pair is joined")
        }
        started = true
    }

    deinit {
        instance.release(removeFile: true)
        // Taken and released once more, so the namespace's lock file and state
        // directory go when nothing is left to protect.
        _ = try? InvocationLock(layout: layout, what: "run exiting", timeoutMs: 1000, waiting: { _ in })
        close(signalFD)
        if multicastEventsFD >= 0 { close(multicastEventsFD) }
        if tcEventsFD >= 0 { close(tcEventsFD) }
    }

    // MARK: - Loop

    /// Runs until SIGINT/SIGTERM; SIGHUP reloads the settings. The datapath stays in place.
    public func run() throws {
        try withInvocationLock { try reconciler.resync(reason: "start") }
        // Adopted joined pairs: their synthetic's qdiscs may have changed while no run was there.
        if reconciler.hasActivePair { qdiscDeadline = clock.milliseconds }
        watchPins()
        for name in settings.synthetics where !reconciler.links.values.contains(where: { $0.name == name }) {
            logger.warning("synthetic \(name) named by --synthetic does not exist (yet): it is managed once it appears")
        }
        if reconciler.machines.isEmpty {
            // Say why when the kernel pairs the VFs itself (net_failover, hv_netvsc).
            let kernelPaired = ((try? ProbeReport.collect().devices) ?? []).filter { $0.role == "kernel-paired" }
            let why = kernelPaired.isEmpty ? "" : "; the kernel pairs these itself, which hnxdp never steers: "
                + kernelPaired.map { "\($0.name) (\($0.note ?? "kernel-paired"))" }.joined(separator: "; ")
            logger.warning(settings.synthetics.isEmpty
                ? "managing no synthetic interface: no pinned pair and no device of the drivers \(settings.effectiveSyntheticDrivers.sorted().joined(separator: ", ")) that is not a port of another device; name one with --synthetic\(why)"
                : "managing no synthetic interface yet\(why)")
        }
        notifier?.send(ServiceNotifier.ready(status: serviceStatus))
        notifier?.watchdogTick(nowMs: clock.milliseconds)
        logger.info("control plane running: \(reconciler.machines.count) pair(s), settle \(settings.timing.settleMs) ms, hold-down \(settings.timing.holdDownMs) ms, transparent \(settings.transparent ? "on" : "off")")
        while true {
            var fds = [pollfd(fd: netlink.fileDescriptor, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: multicastEventsFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: pinWatch?.fileDescriptor ?? -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: tcEventsFD, events: Int16(POLLIN), revents: 0)]
            let timeout = pollTimeout()
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 {
                if errno == EINTR { continue }
                throw HnxdpError.system("poll", errno: errno)
            }
            if fds[1].revents != 0 {
                let signo = hnxdp_read_signal(signalFD)
                if signo == SIGHUP {
                    reloadRequested = true
                } else if signo > 0 {
                    notifier?.send(ServiceNotifier.stopping(status: "stopping on signal \(signo)"))
                    // A datapath this run made for nothing is not left behind.
                    var removed = false
                    try withInvocationLock { removed = try datapath.removePinsIfUnused() }
                    logger.info(removed ? "signal \(signo): exiting; no pair, so no datapath left"
                                        : "signal \(signo): exiting, datapath left in place (`hnxdp detach --all` removes it)")
                    return
                }
            }
            // Serialised with `attach`/`detach` of other processes.
            try withInvocationLock {
                if reloadRequested {
                    reloadRequested = false
                    notifier?.send(ServiceNotifier.reloading(monotonicUsec: clock.nanoseconds / 1000, status: "reloading"))
                    reload()
                    notifier?.send(ServiceNotifier.ready(status: serviceStatus))
                }
                if fds[0].revents != 0 {
                    reconciler.eventReceivedNs = clock.nanoseconds
                    do {
                        for event in try netlink.readEvents() {
                            // One bad event (a device that vanished mid-way) must not stop the control plane.
                            do { try reconciler.handle(event) } catch {
                                logger.error("handling \(event.summary): \(error)")
                            }
                        }
                    } catch let error as HnxdpError where error.errno == ENOBUFS {
                        logger.warning("link notifications overran (ENOBUFS): resynchronising")
                        try reconciler.resync(reason: "overrun")
                    }
                }
                if fds[2].revents != 0 {
                    // An IP multicast join or leave: compare the lists now.
                    _ = hnxdp_netlink_drain(multicastEventsFD)
                    multicastDeadline = 0
                }
                if fds[3].revents != 0 {
                    // Repaired once the removal is over (`rm -r` walks the tree): a
                    // repair racing with it would only be removed again.
                    pinWatch?.drain()
                    pinCheckDeadline = clock.milliseconds + Self.pinSettleMs
                }
                if let deadline = pinCheckDeadline, deadline <= clock.milliseconds {
                    pinCheckDeadline = nil
                    try checkPins()
                }
                if fds[4].revents != 0 {
                    // A qdisc, class or filter changed somewhere in the namespace (our own
                    // copies too): compare the joined pairs once the burst is over.
                    _ = hnxdp_netlink_drain(tcEventsFD)
                    if reconciler.hasActivePair && qdiscDeadline == nil {
                        qdiscDeadline = clock.milliseconds + Self.qdiscDebounceMs
                    }
                }
                do { try tick() } catch { logger.error("timer: \(error)") }
            }
            watchPins()
            notifier?.watchdogTick(nowMs: clock.milliseconds)
        }
    }

    /// The STATUS= line for the service manager (`systemctl status`).
    var serviceStatus: String { reconciler.serviceStatus }

    func withInvocationLock(_ body: () throws -> Void) throws {
        let lock = try InvocationLock(layout: layout, what: "run", waiting: { [logger] in logger.warning("\($0)") })
        defer { withExtendedLifetime(lock) {} }
        try body()
    }

    func pollTimeout() -> Int32 {
        let now = clock.milliseconds
        var deadlines = reconciler.machines.values.compactMap(\.deadline)
        if reconciler.hasActivePair { deadlines.append(multicastDeadline) }
        if let qdiscDeadline { deadlines.append(qdiscDeadline) }
        if let pinCheckDeadline { deadlines.append(pinCheckDeadline) }
        if notifier?.watchdogIntervalMs != nil, let watchdog = notifier?.watchdogDeadline { deadlines.append(watchdog) }
        guard let next = deadlines.min() else { return -1 }
        return next <= now ? 0 : Int32(clamping: next - now)
    }

    /// Timers: the multicast lists of joined pairs, the joined pairs' egress
    /// configuration after a burst of tc notifications, the machines' deadlines.
    func tick() throws {
        if reconciler.hasActivePair && clock.milliseconds >= multicastDeadline {
            multicastDeadline = clock.milliseconds + multicastIntervalMs
            let snapshot = MulticastList.snapshot()
            if snapshot != multicastSnapshot {
                multicastSnapshot = snapshot
                let lists = MulticastList.parse(String(decoding: snapshot, as: UTF8.self))
                for synIndex in reconciler.machines.keys.sorted() {
                    do { try reconciler.syncMulticast(synIndex: synIndex, lists: lists) } catch {
                        logger.warning("multicast list of pair ifindex \(synIndex): \(error)")
                    }
                }
            }
        }
        if let deadline = qdiscDeadline, deadline <= clock.milliseconds {
            qdiscDeadline = nil
            reconciler.followQdiscs()
        }
        try reconciler.tickMachines()
    }
}

extension LinkEvent {
    /// "new link vf0 (ifindex 7)" for log lines.
    var summary: String {
        switch self {
        case .newLink(let l): return "new link \(l.name) (ifindex \(l.ifindex))"
        case .delLink(let l): return "deleted link \(l.name) (ifindex \(l.ifindex))"
        }
    }
}
