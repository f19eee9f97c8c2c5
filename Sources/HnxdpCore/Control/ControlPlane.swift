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
/// B10..B16, B19). It listens to rtnetlink link notifications, pairs VFs by
/// MAC, joins them after the settle delay, passes configuration down while
/// joined, undoes everything when a VF leaves, damps flapping VFs, and adopts
/// what an earlier instance left pinned. It never polls: it sleeps in
/// poll(2) until a notification, a signal or its next timer.
public final class ControlPlane {

    /// Replaced by a SIGHUP reload (`reload()`), within what `RunReload` allows.
    var settings: RunSettings
    /// Where SIGHUP reads the settings again: a description for log lines (the
    /// config file) and the reader (the file with the command line over it).
    /// nil: nothing to reload, SIGHUP only says so.
    public var reloadSource: (description: String, read: () throws -> RunSettings)?
    var reloadRequested = false
    let layout: PinLayout
    let logger: Logger
    let lifecycle: PairLifecycle
    let netlink: RTNetlink
    let datapath: Datapath?
    let signalFD: Int32
    /// Driver and bus of each link (`ethtool -i`), by ifindex; nil: none.
    var deviceInfo: [Int32: (driver: String, busInfo: String)?] = [:]
    /// Synthetics whose VF candidates tie, with the tied ifindexes (logged once per set).
    var ambiguousVFs: [Int32: [Int32]] = [:]
    /// One control plane per network namespace: held for the whole run.
    let instance: PidLock
    /// inotify on the pin directories: pins removed under us (`rm`, bpffs
    /// unmounted) are noticed at once and made again, or the pairs undone.
    var pinWatchFD: Int32 = -1

    /// Every link of the namespace as last seen, by ifindex.
    var links: [Int32: LinkInfo] = [:]
    /// One state machine per managed synthetic, by its ifindex.
    var machines: [Int32: PairStateMachine] = [:]
    /// When the event that led to an action was received (monotonic ns), for reaction times.
    var eventReceivedNs: UInt64 = 0
    /// Multicast addresses hnxdp added to each pair's VF, by synthetic ifindex.
    var multicastAdded: [Int32: Set<[UInt8]>] = [:]
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
    /// Synthetics named by --synthetic that were refused (logged once each).
    var refusedSynthetics: Set<Int32> = []
    /// Socket joined to the multicast-address notification groups, or -1.
    var multicastEventsFD: Int32 = -1
    /// The last /proc/self/net/dev_mcast read: nothing is parsed while it is unchanged.
    var multicastSnapshot: [UInt8] = []
    /// The service manager's notification socket (`NOTIFY_SOCKET`), nil when
    /// not started by one: READY/RELOADING/STOPPING/WATCHDOG (`ServiceNotifier`).
    public var notifier: ServiceNotifier?
    /// Where departure reactions and join durations are observed as histograms
    /// (`--metrics-listen`, `--metrics-textfile`); nil: metrics off.
    public var observations: RunObservations?
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
    /// The last outcome of copying each joined pair's egress configuration, by
    /// synthetic ifindex: both devices still reading the same means nothing to do.
    var qdiscOutcomes: [Int32: QdiscMirror.Outcome] = [:]

    public init(settings: RunSettings, layout: PinLayout, logger: Logger, tcMode: TcModeRequest = .auto) throws {
        self.settings = settings
        self.layout = layout
        self.logger = logger
        self.lifecycle = PairLifecycle(layout: layout, logger: logger, tcMode: tcMode)
        // Before anything is touched: a second control plane in the namespace would
        // join every VF twice.
        let state = StateDirectory.of(layout)
        do {
            self.instance = try PidLock.acquire(state.instanceLockPath, timeoutMs: nil, what: "run")
        } catch let held as LockHeld {
            throw HnxdpError(.badInput, "another hnxdp run (pid \(held.pid)) already manages this network namespace; stop it first (lock \(held.path))")
        }
        // Subscribe before the first dump so nothing between the two is missed.
        self.netlink = try RTNetlink(subscribeToLinks: true)
        let lock = try InvocationLock(layout: layout, what: "run", waiting: { logger.warning("\($0)") })
        self.datapath = try Datapath.openOrCreate(layout).0
        withExtendedLifetime(lock) {}
        let fd = hnxdp_termination_signalfd()
        if fd < 0 { throw HnxdpError.system("set up signal handling", errno: -fd) }
        self.signalFD = fd
        var groups: [UInt32] = [UInt32(HNXDP_RTNLGRP_IPV4_MCADDR), UInt32(HNXDP_RTNLGRP_IPV6_MCADDR)]
        let mfd = hnxdp_netlink_group_socket(&groups, UInt32(groups.count))
        pinWatchFD = inotify_init1(Int32(O_NONBLOCK | O_CLOEXEC))
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
    }

    deinit {
        if pinWatchFD >= 0 { close(pinWatchFD) }
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
        try withInvocationLock { try resync(reason: "start") }
        // Adopted joined pairs: their synthetic's qdiscs may have changed while no run was there.
        if hasActivePair { qdiscDeadline = monotonicMilliseconds() }
        watchPins()
        for name in settings.synthetics where !links.values.contains(where: { $0.name == name }) {
            logger.warning("synthetic \(name) named by --synthetic does not exist (yet): it is managed once it appears")
        }
        if machines.isEmpty {
            // Say why when the kernel pairs the VFs itself (net_failover, hv_netvsc).
            let kernelPaired = ((try? ProbeReport.collect().devices) ?? []).filter { $0.role == "kernel-paired" }
            let why = kernelPaired.isEmpty ? "" : "; the kernel pairs these itself, which hnxdp never steers: "
                + kernelPaired.map { "\($0.name) (\($0.note ?? "kernel-paired"))" }.joined(separator: "; ")
            logger.warning(settings.synthetics.isEmpty
                ? "managing no synthetic interface: no pinned pair and no device of the drivers \(settings.effectiveSyntheticDrivers.sorted().joined(separator: ", ")) that is not a port of another device; name one with --synthetic\(why)"
                : "managing no synthetic interface yet\(why)")
        }
        notifier?.send(ServiceNotifier.ready(status: serviceStatus))
        notifier?.watchdogTick(nowMs: monotonicMilliseconds())
        logger.info("control plane running: \(machines.count) pair(s), settle \(settings.timing.settleMs) ms, hold-down \(settings.timing.holdDownMs) ms, transparent \(settings.transparent ? "on" : "off")")
        while true {
            var fds = [pollfd(fd: netlink.fileDescriptor, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: multicastEventsFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: pinWatchFD, events: Int16(POLLIN), revents: 0),
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
                    try withInvocationLock { removed = try datapath?.removePinsIfUnused() ?? false }
                    logger.info(removed ? "signal \(signo): exiting; no pair, so no datapath left"
                                        : "signal \(signo): exiting, datapath left in place (`hnxdp detach --all` removes it)")
                    return
                }
            }
            // Serialised with `attach`/`detach` of other processes.
            try withInvocationLock {
                if reloadRequested {
                    reloadRequested = false
                    notifier?.send(ServiceNotifier.reloading(monotonicUsec: monotonicNanoseconds() / 1000, status: "reloading"))
                    reload()
                    notifier?.send(ServiceNotifier.ready(status: serviceStatus))
                }
                if fds[0].revents != 0 {
                    eventReceivedNs = monotonicNanoseconds()
                    do {
                        for event in try netlink.readEvents() {
                            // One bad event (a device that vanished mid-way) must not stop the control plane.
                            do { try handle(event) } catch {
                                logger.error("handling \(event.summary): \(error)")
                            }
                        }
                    } catch let error as HnxdpError where error.errno == ENOBUFS {
                        logger.warning("link notifications overran (ENOBUFS): resynchronising")
                        try resync(reason: "overrun")
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
                    drainPinWatch()
                    pinCheckDeadline = monotonicMilliseconds() + Self.pinSettleMs
                }
                if let deadline = pinCheckDeadline, deadline <= monotonicMilliseconds() {
                    pinCheckDeadline = nil
                    try checkPins()
                }
                if fds[4].revents != 0 {
                    // A qdisc, class or filter changed somewhere in the namespace (our own
                    // copies too): compare the joined pairs once the burst is over.
                    _ = hnxdp_netlink_drain(tcEventsFD)
                    if hasActivePair && qdiscDeadline == nil {
                        qdiscDeadline = monotonicMilliseconds() + Self.qdiscDebounceMs
                    }
                }
                do { try tick() } catch { logger.error("timer: \(error)") }
            }
            watchPins()
            notifier?.watchdogTick(nowMs: monotonicMilliseconds())
        }
    }

    /// The STATUS= line for the service manager (`systemctl status`).
    var serviceStatus: String {
        let joined = machines.values.filter { if case .active = $0.phase { return true } else { return false } }.count
        return "managing \(machines.count) synthetic(s), \(joined) pair(s) joined"
    }

    func withInvocationLock(_ body: () throws -> Void) throws {
        let lock = try InvocationLock(layout: layout, what: "run", waiting: { [logger] in logger.warning("\($0)") })
        defer { withExtendedLifetime(lock) {} }
        try body()
    }

    func pollTimeout() -> Int32 {
        let now = monotonicMilliseconds()
        var deadlines = machines.values.compactMap(\.deadline)
        if hasActivePair { deadlines.append(multicastDeadline) }
        if let qdiscDeadline { deadlines.append(qdiscDeadline) }
        if let pinCheckDeadline { deadlines.append(pinCheckDeadline) }
        if notifier?.watchdogIntervalMs != nil, let watchdog = notifier?.watchdogDeadline { deadlines.append(watchdog) }
        guard let next = deadlines.min() else { return -1 }
        return next <= now ? 0 : Int32(clamping: next - now)
    }

    // MARK: - Events

    /// Re-reads every link and reconciles: adopts pinned pairs, installs
    /// managed synthetics, notices VFs that came or went while we were not looking.
    func resync(reason: String) throws {
        links = Dictionary(try netlink.links().map { ($0.ifindex, $0) }, uniquingKeysWith: { $1 })
        // B21: joins and leaves a crash cut short are finished before anything is adopted.
        for ifindex in lifecycle.records.state.recordedSynthetics() where machines[ifindex] == nil {
            do { try lifecycle.reconcile(synthetic: ifindex, datapath: datapath, netlink: netlink) } catch {
                logger.error("pair ifindex \(ifindex): \(error)")
            }
        }
        // Pairs of an earlier run (or `attach`): adopt or reconcile (B19).
        if let datapath {
            for key in try datapath.pairs.keys() {
                let ifindex = Int32(bitPattern: key)
                guard let syn = links[ifindex], isManaged(syn, pinned: true) else { continue }
                guard let pair = try datapath.pairs.lookup(key) else { continue }
                try adopt(syn: syn, pair: pair)
            }
        }
        for link in links.values.sorted(by: { $0.ifindex < $1.ifindex }) where machines[link.ifindex] == nil {
            if isManaged(link, pinned: false) { try manage(link) }
        }
        // VFs present now.
        for (synIndex, _) in machines {
            guard let syn = links[synIndex] else { continue }
            if let vf = vfCandidate(for: syn) { try feed(synIndex, .vfPresent(vf.ifindex)) }
            else if let current = machines[synIndex]?.phase.vf, links[current] == nil { try feed(synIndex, .vfGone(current)) }
        }
        logger.debug("resync (\(reason)): \(links.count) links, \(machines.count) managed synthetic(s)")
    }

    func handle(_ event: LinkEvent) throws {
        switch event {
        case .newLink(let link):
            links[link.ifindex] = link
            if machines[link.ifindex] != nil {
                try synthChanged(link)
                return
            }
            if isManaged(link, pinned: false) {
                try manage(link)
                if let vf = vfCandidate(for: link) { try feed(link.ifindex, .vfPresent(vf.ifindex)) }
                return
            }
            // A VF of a managed synthetic?
            for (synIndex, machine) in machines {
                guard let syn = links[synIndex] else { continue }
                if matches(vf: link, syn: syn) {
                    if case .active(let vf) = machine.phase, vf == link.ifindex {
                        try enforceVF(vfIndex: vf, synIndex: synIndex)
                    } else if vfCandidate(for: syn)?.ifindex == link.ifindex {
                        try feed(synIndex, .vfPresent(link.ifindex))
                    }
                } else if machine.phase.vf == link.ifindex {
                    // It no longer matches (MAC changed): treat as gone.
                    try feed(synIndex, .vfGone(link.ifindex))
                }
            }
        case .delLink(let link):
            links[link.ifindex] = nil
            deviceInfo[link.ifindex] = nil
            if machines[link.ifindex] != nil {
                try syntheticGone(link)
                return
            }
            for (synIndex, machine) in machines where machine.phase.vf == link.ifindex {
                try feed(synIndex, .vfGone(link.ifindex))
            }
            // A tie between VF candidates may be resolved by this one going.
            for (synIndex, machine) in machines where ambiguousVFs[synIndex] != nil {
                guard case .idle = machine.phase, let syn = links[synIndex] else { continue }
                if let vf = vfCandidate(for: syn) { try feed(synIndex, .vfPresent(vf.ifindex)) }
            }
        }
    }

    var hasActivePair: Bool {
        machines.values.contains { if case .active = $0.phase { return true } else { return false } }
    }

    func tick() throws {
        if hasActivePair && monotonicMilliseconds() >= multicastDeadline {
            multicastDeadline = monotonicMilliseconds() + multicastIntervalMs
            let snapshot = MulticastList.snapshot()
            if snapshot != multicastSnapshot {
                multicastSnapshot = snapshot
                let lists = MulticastList.parse(String(decoding: snapshot, as: UTF8.self))
                for synIndex in machines.keys.sorted() {
                    do { try syncMulticast(synIndex: synIndex, lists: lists) } catch {
                        logger.warning("multicast list of pair ifindex \(synIndex): \(error)")
                    }
                }
            }
        }
        if let deadline = qdiscDeadline, deadline <= monotonicMilliseconds() {
            qdiscDeadline = nil
            followQdiscs()
        }
        for synIndex in machines.keys.sorted() {
            if let d = machines[synIndex]?.deadline, d <= monotonicMilliseconds() {
                try feed(synIndex, .tick)
            }
        }
    }

    /// Feeds one event to a pair's machine and carries out its actions.
    func feed(_ synIndex: Int32, _ event: PairStateMachine.Event) throws {
        guard var machine = machines[synIndex] else { return }
        let actions = machine.handle(event, now: monotonicMilliseconds())
        machines[synIndex] = machine
        for action in actions { try perform(action, synIndex: synIndex) }
    }

    func perform(_ action: PairStateMachine.Action, synIndex: Int32) throws {
        guard let syn = links[synIndex], let datapath else { return }
        var log = logger
        log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
        switch action {
        case .phaseChanged(let from, let to):
            let vf = machines[synIndex]?.phase.vf.flatMap { links[$0] }
            log.info("state \(from) -> \(to)\(vf.map { ", VF \($0.name)(\($0.ifindex))" } ?? "")")
            try publish(synIndex: synIndex)
        case .reported(let vfIndex):
            let vf = vfIndex.flatMap { links[$0] }
            log.info(vf.map { "VF \($0.name)(\($0.ifindex)) present; transparent mode off: reported only, nothing changed" }
                     ?? "VF gone; transparent mode off: nothing to undo")
            if var pair = try datapath.pairs.lookup(UInt32(bitPattern: synIndex)),
               pair.pairState == .disabled {
                pair.vf_ifindex = vfIndex.map { UInt32(bitPattern: $0) } ?? 0
                try datapath.storePair(pair)
            }
        case .join(let vfIndex):
            // Join on the devices as they are now: the cache can be stale (GSO limits
            // change without a link notification).
            guard let vf = try netlink.link(index: vfIndex) else { return try feed(synIndex, .vfGone(vfIndex)) }
            guard let syn = try netlink.link(index: synIndex) else { return }
            links[vfIndex] = vf
            links[synIndex] = syn
            do {
                let start = monotonicNanoseconds()
                // The entry still shows the phase the machine left (publish): held down or settling.
                let afterHoldDown = try datapath.pairs.lookup(UInt32(bitPattern: synIndex))?.pairState == .heldDown
                let result = try lifecycle.joinVF(synthetic: syn, vf: vf, netlink: netlink, datapath: datapath,
                                                  switchReason: afterHoldDown ? .holdDownEnded : .joined)
                multicastAdded[synIndex] = []
                qdiscOutcomes[synIndex] = nil
                try syncMulticast(synIndex: synIndex, lists: MulticastList.current())
                let elapsed = monotonicNanoseconds() - start
                observations?.joinDuration(synthetic: syn.name, nanoseconds: elapsed)
                log.info("VF \(vf.name)(\(vf.ifindex)) joined: datapath vf, mtu \(result.mtu)\(result.featuresTurnedOff.isEmpty ? "" : ", features off: " + result.featuresTurnedOff.joined(separator: " ")) (\(elapsed / 1000) us)")
            } catch {
                log.error("joining VF \(vf.name)(\(vf.ifindex)) failed: \(error); retrying after the hold-down")
                try feed(synIndex, .joinFailed(vfIndex))
            }
        case .leave(let vfIndex):
            var switched: UInt64 = 0
            var heldDown = false
            if case .heldDown = machines[synIndex]?.phase { heldDown = true }
            try lifecycle.leaveVF(synthetic: synIndex, datapath: datapath, netlink: netlink, reason: "VF ifindex \(vfIndex) gone",
                                  switchReason: heldDown ? .heldDown : .departed) {
                switched = monotonicNanoseconds()
            }
            multicastAdded[synIndex] = nil
            qdiscOutcomes[synIndex] = nil
            if let fresh = try netlink.link(index: synIndex) { links[synIndex] = fresh }
            try publish(synIndex: synIndex) // held-down after a flapping departure
            let reaction = switched &- eventReceivedNs
            let restored = monotonicNanoseconds() &- eventReceivedNs
            if switched != 0 { observations?.departureReaction(synthetic: syn.name, nanoseconds: reaction) }
            log.info("VF ifindex \(vfIndex) left: datapath synthetic, features and limits restored (reaction \(reaction / 1000) us to the map update, \(restored / 1000) us to restored)")
        }
    }

    /// Writes the machine's phase into the pair entry so `dump` shows it.
    func publish(synIndex: Int32) throws {
        guard let datapath, let machine = machines[synIndex] else { return }
        let key = UInt32(bitPattern: synIndex)
        guard var pair = try datapath.pairs.lookup(key) else { return }
        let state = machine.phase.state
        if state == .active { return } // joinVF writes it
        // Never claim a non-active state while a VF is still joined in the map.
        if pair.vf_ifindex != 0 && pair.pairState == .active { return }
        pair.pairState = state
        try datapath.storePair(pair)
    }

    // MARK: - Pairs

    /// Whether `link` is a synthetic interface this run manages.
    func isManaged(_ link: LinkInfo, pinned: Bool) -> Bool {
        guard Eligibility.ineligibilityReason(link) == nil else { return false }
        // A pinned pair is this namespace's, whatever its synthetic is called now
        // (renamed since, or made by `attach`): tracked by ifindex, never abandoned.
        if pinned {
            if !settings.synthetics.isEmpty && !settings.synthetics.contains(link.name) {
                logger.warning("adopting pinned pair of \(link.name)(\(link.ifindex)), not named by --synthetic (renamed, or made by `hnxdp attach`): its VF is followed like the others")
            }
            return true
        }
        if !settings.synthetics.isEmpty {
            guard settings.synthetics.contains(link.name) else { return false }
            let master = link.masterIndex.flatMap { links[$0] }.map(device)
            if let refusal = PairingPolicy.syntheticRefusal(device(link), master: master) {
                if refusedSynthetics.insert(link.ifindex).inserted { logger.warning("not managing \(link.name) named by --synthetic: \(refusal)") }
                return false
            }
            return true
        }
        return PairingPolicy.isDefaultSynthetic(device(link), drivers: settings.effectiveSyntheticDrivers)
    }

    /// A link with its driver and bus (`ethtool -i`), cached by ifindex.
    func device(_ link: LinkInfo) -> PairingPolicy.Device {
        if deviceInfo[link.ifindex] == nil { deviceInfo[link.ifindex] = Ethtool.driverInfo(of: link.name) }
        let info = deviceInfo[link.ifindex] ?? nil
        return PairingPolicy.Device(link: link, driver: info?.driver, busInfo: info?.busInfo)
    }

    /// Starts managing a synthetic: install its pair (transparent) and a machine.
    func manage(_ syn: LinkInfo) throws {
        if settings.transparent, let datapath {
            try lifecycle.install(synthetic: syn, flags: .transparent, datapath: datapath)
        } else if let datapath, try datapath.pairs.lookup(UInt32(bitPattern: syn.ifindex)) == nil {
            // Report only: an entry for `dump`, nothing on the devices.
            var pair = hnxdp_pair()
            pair.syn_ifindex = UInt32(bitPattern: syn.ifindex)
            pair.pairState = .disabled
            pair.slot = try lifecycle.freeSlot(datapath)
            pair.mtu = syn.mtu
            try datapath.storePair(pair)
        }
        machines[syn.ifindex] = PairStateMachine(timing: settings.timing, transparent: settings.transparent)
        var log = logger
        log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
        log.info("managing synthetic \(syn.name) (\(syn.macString)), state \(machines[syn.ifindex]!.phase.name)")
        try publish(synIndex: syn.ifindex)
    }

    /// B19: takes over a pinned pair as it is, reconciled with the devices now.
    func adopt(syn: LinkInfo, pair: hnxdp_pair) throws {
        guard let datapath else { return }
        if pair.pairState == .disabled {
            // Report-only pair of a run with transparent mode off: nothing was changed.
            if settings.transparent {
                try datapath.removePair(synthetic: UInt32(bitPattern: syn.ifindex))
                try manage(syn)
            } else {
                machines[syn.ifindex] = PairStateMachine(timing: settings.timing, transparent: false)
            }
            return
        }
        var log = logger
        log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
        if pair.vf_ifindex != 0 {
            let vfIndex = Int32(bitPattern: pair.vf_ifindex)
            if let vf = links[vfIndex], matches(vf: vf, syn: syn) || pair.pairFlags.contains(.explicit) {
                // Still joined: keep it, repair a missing link without touching the rest.
                let repaired = try lifecycle.reattachLinks(synthetic: syn, vf: vf, datapath: datapath)
                if !repaired.isEmpty { log.warning("adopted pair had lost links: re-attached \(repaired.joined(separator: ", "))") }
                machines[syn.ifindex] = PairStateMachine(timing: settings.timing, transparent: settings.transparent, adopted: .active(vf: vfIndex))
                log.info("adopted: state active, VF \(vf.name)(\(vf.ifindex)), links reused")
                return
            }
            // The VF left while no control plane ran: undo now (B13).
            try lifecycle.leaveVF(synthetic: syn.ifindex, datapath: datapath, netlink: netlink, reason: "left while hnxdp was not running",
                                  switchReason: .departedWhileStopped)
            log.info("adopted: VF ifindex \(vfIndex) left meanwhile, restored the synthetic, state idle")
        }
        try lifecycle.install(synthetic: syn, flags: pair.pairFlags, datapath: datapath)
        machines[syn.ifindex] = PairStateMachine(timing: settings.timing, transparent: settings.transparent)
        try publish(synIndex: syn.ifindex)
    }

    /// The synthetic itself went away: forget the pair and remove its pins.
    func syntheticGone(_ syn: LinkInfo) throws {
        machines[syn.ifindex] = nil
        guard let datapath else { return }
        try lifecycle.leaveVF(synthetic: syn.ifindex, datapath: datapath, netlink: netlink, reason: "synthetic removed", switchReason: .syntheticRemoved)
        try lifecycle.uninstall(synthetic: syn.ifindex, datapath: datapath)
        logger.info("pair \(syn.name)(\(syn.ifindex)): synthetic removed, pair forgotten")
    }

    /// B1: `vf` is a VF of `syn`: same match address, eligible, not managed itself.
    func matches(vf: LinkInfo, syn: LinkInfo) -> Bool {
        vf.ifindex != syn.ifindex && machines[vf.ifindex] == nil &&
            Eligibility.vfIneligibilityReason(vf) == nil &&
            Eligibility.matchAddress(vf) == Eligibility.matchAddress(syn) &&
            !isVFOfAnotherPair(vf.ifindex, except: syn.ifindex)
    }

    func isVFOfAnotherPair(_ ifindex: Int32, except syn: Int32) -> Bool {
        machines.contains { $0.key != syn && $0.value.phase.vf == ifindex }
    }

    /// The VF `PairingPolicy` chooses for `syn`, if any. Several equally good
    /// candidates join nothing: the choice is logged once per set, with the names.
    func vfCandidate(for syn: LinkInfo) -> LinkInfo? {
        let candidates = links.values.filter { matches(vf: $0, syn: syn) }.map(device)
        switch PairingPolicy.chooseVF(for: device(syn), among: candidates, taken: []) {
        case .none:
            return nil
        case .vf(let chosen):
            ambiguousVFs[syn.ifindex] = nil
            return chosen.link
        case .ambiguous(let tied):
            let set = tied.map(\.link.ifindex)
            if ambiguousVFs[syn.ifindex] != set {
                ambiguousVFs[syn.ifindex] = set
                var log = logger
                log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
                log.warning("not joining any VF: \(tied.map { "\($0.link.name)(\($0.link.ifindex), \($0.driver ?? "no driver"))" }.joined(separator: ", ")) all share \(syn.name)'s MAC and none is a better VF (a PCI function is preferred); pair one with `hnxdp attach --synthetic \(syn.name) --vf IF` or remove the others")
            }
            return nil
        }
    }

    // MARK: - While joined (B11, B12)

    /// The synthetic changed: pass MTU, admin state, promiscuous and
    /// all-multicast down to the joined VF, re-intersect features.
    func synthChanged(_ event: LinkInfo) throws {
        // Notifications can be stale (our own changes are in flight): decide on the devices as they are now.
        guard case .active(let vfIndex) = machines[event.ifindex]?.phase,
              let syn = try netlink.link(index: event.ifindex), let vf = try netlink.link(index: vfIndex),
              let datapath, var pair = try datapath.pairs.lookup(UInt32(bitPattern: syn.ifindex)) else { return }
        var log = logger
        log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
        if syn.mtu != pair.mtu {
            do {
                try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(mtu: syn.mtu))
                log.info("MTU \(pair.mtu) -> \(syn.mtu) passed to VF \(vf.name)")
                pair.mtu = syn.mtu
                try datapath.storePair(pair)
            } catch {
                log.warning("VF \(vf.name) refused MTU \(syn.mtu) (\(error)); putting \(syn.name) back to \(pair.mtu)")
                try netlink.setLink(index: syn.ifindex, name: syn.name, LinkChange(mtu: pair.mtu))
            }
        }
        let change = Self.flagsToFollow(synthetic: syn, vf: vf)
        if change != LinkChange() {
            try netlink.setLink(index: vf.ifindex, name: vf.name, change)
            log.info("passed \(change) to VF \(vf.name)")
        }
        try reintersectFeatures(syn: syn, vf: vf, pair: &pair, log: log)
        try syncMulticast(synIndex: syn.ifindex, lists: MulticastList.current())
    }

    /// The joined VFs follow their synthetic's egress configuration (qdiscs, classes,
    /// filters); a VF whose qdiscs were changed directly gets the copy back.
    func followQdiscs() {
        // One qdisc dump for all pairs (256 pairs: 1 instead of about 1000 dumps of every
        // qdisc of the namespace); a change is notified again and followed by the next call.
        try? netlink.beginQdiscSnapshot()
        defer { netlink.endQdiscSnapshot() }
        for synIndex in machines.keys.sorted() {
            guard case .active(let vfIndex) = machines[synIndex]?.phase else {
                qdiscOutcomes[synIndex] = nil
                continue
            }
            do {
                guard let syn = try netlink.link(index: synIndex), let vf = try netlink.link(index: vfIndex) else { continue }
                var log = logger
                log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
                var lifecycle = self.lifecycle
                lifecycle.logger = log
                qdiscOutcomes[synIndex] = try lifecycle.followQdisc(synthetic: syn, vf: vf, netlink: netlink,
                                                                    unchangedSince: qdiscOutcomes[synIndex])
            } catch {
                logger.warning("egress qdiscs of pair ifindex \(synIndex): \(error)")
            }
        }
    }

    /// B11: the joined VF gets the synthetic's multicast list, or all-multicast
    /// when it cannot take an address.
    func syncMulticast(synIndex: Int32, lists: [Int32: Set<[UInt8]>]) throws {
        guard case .active(let vfIndex) = machines[synIndex]?.phase, links[vfIndex] != nil else { return }
        // A VF that is already gone from the namespace (its deletion notification
        // may still be on its way) is left alone.
        guard let vf = try netlink.link(index: vfIndex) else { return }
        var added = multicastAdded[synIndex] ?? []
        let plan = MulticastList.plan(synthetic: lists[synIndex] ?? [], vf: lists[vfIndex] ?? [], added: added)
        if plan.add.isEmpty && plan.remove.isEmpty { return }
        var log = logger
        log[metadataKey: "pair"] = "\(links[synIndex]?.name ?? "?")(\(synIndex))"
        // B21: what is about to be added is recorded first, so a leave after any crash removes it.
        try recordMulticast(synIndex, added.union(plan.add))
        for mac in plan.add {
            do {
                try MulticastList.set(mac, on: vf.name, add: true)
                added.insert(mac)
            } catch let error as HnxdpError where error.errno == ENODEV {
                return
            } catch {
                log.warning("VF \(vf.name) cannot take multicast \(LinkInfo.formatMAC(mac)) (\(error)): all-multicast on instead")
                try netlink.setLink(index: vf.ifindex, name: vf.name, LinkChange(allmulti: true))
                break
            }
        }
        for mac in plan.remove {
            try MulticastList.set(mac, on: vf.name, add: false)
            added.remove(mac)
        }
        multicastAdded[synIndex] = added
        try recordMulticast(synIndex, added)
        log.info("multicast list copied to VF \(vf.name): +\(plan.add.count) -\(plan.remove.count)")
    }

    /// Keeps the record's list of multicast addresses hnxdp added to the VF up to date.
    func recordMulticast(_ synIndex: Int32, _ added: Set<[UInt8]>) throws {
        try lifecycle.records.update(synthetic: synIndex) {
            $0.multicastAdded = added.map(LinkInfo.formatMAC).sorted()
        }
    }

    /// Offload changes on the synthetic: the user's new wish becomes the
    /// saved state, and the synthetic gets the intersection with the VF again.
    func reintersectFeatures(syn: LinkInfo, vf: LinkInfo, pair: inout hnxdp_pair, log: Logger) throws {
        guard let datapath else { return }
        let now = try Ethtool.features(of: syn.name)
        let effective = FeatureWords.array(pair.effective_features)
        if now.active == effective { return }
        let vfFeatures = try Ethtool.features(of: vf.name)
        let changed = FeatureWords.xor(now.active, effective)
        let saved = FeatureWords.array(pair.saved_features)
        pair.saved_features = FeatureWords.tuple((0..<FeatureWords.count).map { (saved[$0] & ~changed[$0]) | (now.requested[$0] & changed[$0]) })
        let savedActive = FeatureWords.array(pair.saved_active)
        pair.saved_active = FeatureWords.tuple((0..<FeatureWords.count).map { (savedActive[$0] & ~changed[$0]) | (now.active[$0] & changed[$0]) })
        // The user's new wish is what a leave puts back: recorded before the change (B21).
        let wish = FeatureWords.array(pair.saved_features)
        try lifecycle.records.update(synthetic: syn.ifindex) { $0.synthetic.features = wish }
        let (requested, mask) = intersectFeatures(synthetic: now, vf: vfFeatures)
        let after = FeatureWords.isZero(mask) ? now : try Ethtool.setFeatures(of: syn.name, requested: requested, mask: mask)
        pair.effective_features = FeatureWords.tuple(after.active)
        pair.vf_features = FeatureWords.tuple(vfFeatures.active)
        try datapath.storePair(pair)
        log.info("offloads changed on \(syn.name): re-intersected with VF \(vf.name) (\(FeatureSet.names(of: FeatureWords.xor(now.active, after.active), in: now.names).joined(separator: " ")))")
    }

    /// The admin state, promiscuous and all-multicast flags the VF must take
    /// from the synthetic (B7, B11); empty when they already agree.
    static func flagsToFollow(synthetic syn: LinkInfo, vf: LinkInfo) -> LinkChange {
        var change = LinkChange()
        if syn.isUp != vf.isUp { change.up = syn.isUp }
        if syn.isPromiscuous != vf.isPromiscuous { change.promisc = syn.isPromiscuous }
        if syn.isAllMulticast != vf.isAllMulticast { change.allmulti = syn.isAllMulticast }
        return change
    }

    /// B12: the joined VF was changed directly: put hnxdp's settings back.
    func enforceVF(vfIndex: Int32, synIndex: Int32) throws {
        // Decide on the devices as they are now, not on a possibly stale notification.
        guard let datapath, let vf = try netlink.link(index: vfIndex), let syn = try netlink.link(index: synIndex),
              let pair = try datapath.pairs.lookup(UInt32(bitPattern: synIndex)),
              pair.vf_ifindex == UInt32(bitPattern: vfIndex) else { return }
        var change = Self.flagsToFollow(synthetic: syn, vf: vf)
        if vf.mtu != pair.mtu { change.mtu = pair.mtu }
        guard change != LinkChange() else { return }
        var log = logger
        log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
        log.warning("VF \(vf.name) was changed directly (configure \(syn.name) instead); putting back \(change)")
        try netlink.setLink(index: vf.ifindex, name: vf.name, change)
    }
}

extension LinkInfo {
    /// IFF_ALLMULTI as requested on the device.
    var isAllMulticast: Bool { flags & 0x200 != 0 }
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
