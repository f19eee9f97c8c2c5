import CHnxdpShim
import Glibc
import Logging

/// The reconciler of `hnxdp run`: desired against actual. It keeps the links
/// of the namespace as last seen and one `PairStateMachine` per managed
/// synthetic (the one writer of pair state: the machine decides, the pair
/// entry mirrors it, `publish`). It decides which synthetics are managed
/// (B1, `PairingPolicy`), adopts what an earlier instance left pinned (B19),
/// resynchronises after an overrun, feeds link events and time to the
/// machines, and carries out their actions through `DeviceChanges`. What to do
/// about a joined pair's devices when they change is JoinedPairPolicy.swift;
/// the event loop that calls in is ControlPlane.swift. Everything it touches
/// goes through the seams (Seams.swift), so it runs against fakes unprivileged.
final class PairReconciler {
    var settings: RunSettings
    let logger: Logger
    /// The seams: links and multicast lists, ethtool, the pair map and records,
    /// the lifecycle's operations on devices, the monotonic clock.
    let netlink: LinkTable
    let features: DeviceFeatures
    let store: PairStore
    let devices: DeviceChanges
    let clock: ControlClock
    /// Where departure reactions and join durations are observed; nil: metrics off.
    var observations: RunObservations?

    /// Every link of the namespace as last seen, by ifindex.
    var links: [Int32: LinkInfo] = [:]
    /// One state machine per managed synthetic, by its ifindex.
    var machines: [Int32: PairStateMachine] = [:]
    /// Driver and bus of each link (`ethtool -i`), by ifindex; nil: none.
    var deviceInfo: [Int32: (driver: String, busInfo: String)?] = [:]
    /// Synthetics whose VF candidates tie, with the tied ifindexes (logged once per set).
    var ambiguousVFs: [Int32: [Int32]] = [:]
    /// Devices with a pair's MAC that arrived while it had a VF, already logged.
    var secondVFsNoted: [Int32: Set<Int32>] = [:]
    /// Synthetics named by --synthetic that were refused (logged once each).
    var refusedSynthetics: Set<Int32> = []
    /// When the event that led to an action was received (monotonic ns), for reaction times.
    var eventReceivedNs: UInt64 = 0
    /// Multicast addresses hnxdp added to each pair's VF, by synthetic ifindex.
    var multicastAdded: [Int32: Set<[UInt8]>] = [:]
    /// The last outcome of copying each joined pair's egress configuration, by
    /// synthetic ifindex: both devices still reading the same means nothing to do.
    var qdiscOutcomes: [Int32: QdiscMirror.Outcome] = [:]

    init(settings: RunSettings, logger: Logger, netlink: LinkTable, features: DeviceFeatures,
         store: PairStore, devices: DeviceChanges, clock: ControlClock) {
        self.settings = settings
        self.logger = logger
        self.netlink = netlink
        self.features = features
        self.store = store
        self.devices = devices
        self.clock = clock
    }

    var hasActivePair: Bool {
        machines.values.contains { if case .active = $0.phase { return true } else { return false } }
    }

    /// The STATUS= line for the service manager (`systemctl status`).
    var serviceStatus: String {
        let joined = machines.values.filter { if case .active = $0.phase { return true } else { return false } }.count
        return "managing \(machines.count) synthetic(s), \(joined) pair(s) joined"
    }

    // MARK: - Events

    /// Re-reads every link and reconciles: adopts pinned pairs, installs
    /// managed synthetics, notices VFs that came or went while we were not looking.
    func resync(reason: String) throws {
        links = Dictionary(try netlink.links().map { ($0.ifindex, $0) }, uniquingKeysWith: { $1 })
        // B21: joins and leaves a crash cut short are finished before anything is adopted.
        for ifindex in store.recordedSynthetics() where machines[ifindex] == nil {
            do { try devices.finishInterrupted(synthetic: ifindex) } catch {
                logger.error("pair ifindex \(ifindex): \(error)")
            }
        }
        // Pairs of an earlier run (or `attach`): adopt or reconcile (B19). A pair this
        // run already manages keeps its machine (after an overrun: its phase and its
        // departures for flap damping); a VF that left unnoticed is fed below.
        for ifindex in try store.pairedSynthetics() where machines[ifindex] == nil {
            guard let syn = links[ifindex], isManaged(syn, pinned: true) else { continue }
            guard let pair = try store.pair(ifindex) else { continue }
            try adopt(syn: syn, pair: pair)
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
            var waiting = Set(ambiguousVFs.keys) // a tie may be resolved by this one going
            for (synIndex, machine) in machines where machine.phase.vf == link.ifindex {
                if secondVFsNoted.removeValue(forKey: synIndex) != nil { waiting.insert(synIndex) }
                try feed(synIndex, .vfGone(link.ifindex))
            }
            for synIndex in secondVFsNoted.keys { secondVFsNoted[synIndex]?.remove(link.ifindex) }
            // Another device with the MAC that waited (a tie, or the VF's second) may now be joined.
            for (synIndex, machine) in machines where waiting.contains(synIndex) {
                guard case .idle = machine.phase, let syn = links[synIndex] else { continue }
                if let vf = vfCandidate(for: syn) { try feed(synIndex, .vfPresent(vf.ifindex)) }
            }
        }
    }

    /// Time passed: the machines whose deadline came (settled, hold-down over).
    func tickMachines() throws {
        for synIndex in machines.keys.sorted() {
            if let d = machines[synIndex]?.deadline, d <= clock.milliseconds {
                try feed(synIndex, .tick)
            }
        }
    }

    /// Feeds one event to a pair's machine and carries out its actions.
    func feed(_ synIndex: Int32, _ event: PairStateMachine.Event) throws {
        guard var machine = machines[synIndex] else { return }
        let actions = machine.handle(event, now: clock.milliseconds)
        machines[synIndex] = machine
        for action in actions { try perform(action, synIndex: synIndex) }
    }

    func perform(_ action: PairStateMachine.Action, synIndex: Int32) throws {
        guard let syn = links[synIndex] else { return }
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
            if var pair = try store.pair(synIndex), pair.pairState == .disabled {
                pair.vf_ifindex = vfIndex.map { UInt32(bitPattern: $0) } ?? 0
                try store.store(pair)
            }
        case .join(let vfIndex):
            // Join on the devices as they are now: the cache can be stale (GSO limits
            // change without a link notification).
            guard let vf = try netlink.link(index: vfIndex) else { return try feed(synIndex, .vfGone(vfIndex)) }
            guard let syn = try netlink.link(index: synIndex) else { return }
            links[vfIndex] = vf
            links[synIndex] = syn
            do {
                let start = clock.nanoseconds
                // The entry still shows the phase the machine left (publish): held down or settling.
                let afterHoldDown = try store.pair(synIndex)?.pairState == .heldDown
                let result = try devices.join(synthetic: syn, vf: vf,
                                              switchReason: afterHoldDown ? .holdDownEnded : .joined)
                multicastAdded[synIndex] = []
                qdiscOutcomes[synIndex] = nil
                try syncMulticast(synIndex: synIndex, lists: netlink.multicastLists())
                let elapsed = clock.nanoseconds - start
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
            try devices.leave(synthetic: synIndex, reason: "VF ifindex \(vfIndex) gone",
                              switchReason: heldDown ? .heldDown : .departed) { [clock] in
                switched = clock.nanoseconds
            }
            multicastAdded[synIndex] = nil
            qdiscOutcomes[synIndex] = nil
            if let fresh = try netlink.link(index: synIndex) { links[synIndex] = fresh }
            try publish(synIndex: synIndex) // held-down after a flapping departure
            let reaction = switched &- eventReceivedNs
            let restored = clock.nanoseconds &- eventReceivedNs
            if switched != 0 { observations?.departureReaction(synthetic: syn.name, nanoseconds: reaction) }
            log.info("VF ifindex \(vfIndex) left: datapath synthetic, features and limits restored (reaction \(reaction / 1000) us to the map update, \(restored / 1000) us to restored)")
        }
    }

    /// Writes the machine's phase into the pair entry so `dump` shows it.
    func publish(synIndex: Int32) throws {
        guard let machine = machines[synIndex] else { return }
        guard var pair = try store.pair(synIndex) else { return }
        let state = machine.phase.state
        if state == .active { return } // joinVF writes it
        // Never claim a non-active state while a VF is still joined in the map.
        if pair.vf_ifindex != 0 && pair.pairState == .active { return }
        pair.pairState = state
        try store.store(pair)
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
        if deviceInfo[link.ifindex] == nil { deviceInfo[link.ifindex] = features.driverInfo(of: link.name) }
        let info = deviceInfo[link.ifindex] ?? nil
        return PairingPolicy.Device(link: link, driver: info?.driver, busInfo: info?.busInfo)
    }

    /// Starts managing a synthetic: install its pair (transparent) and a machine.
    func manage(_ syn: LinkInfo) throws {
        if settings.transparent {
            try devices.install(synthetic: syn, flags: .transparent)
        } else if try store.pair(syn.ifindex) == nil {
            // Report only: an entry for `dump`, nothing on the devices.
            var pair = hnxdp_pair()
            pair.syn_ifindex = UInt32(bitPattern: syn.ifindex)
            pair.pairState = .disabled
            pair.slot = try store.freeSlot()
            pair.mtu = syn.mtu
            try store.store(pair)
        }
        machines[syn.ifindex] = PairStateMachine(timing: settings.timing, transparent: settings.transparent)
        var log = logger
        log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
        log.info("managing synthetic \(syn.name) (\(syn.macString)), state \(machines[syn.ifindex]!.phase.name)")
        try publish(synIndex: syn.ifindex)
    }

    /// B19: takes over a pinned pair as it is, reconciled with the devices now.
    func adopt(syn: LinkInfo, pair: hnxdp_pair) throws {
        if pair.pairState == .disabled {
            // Report-only pair of a run with transparent mode off: nothing was changed.
            if settings.transparent {
                try store.remove(syn.ifindex)
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
                let repaired = try devices.reattachLinks(synthetic: syn, vf: vf)
                if !repaired.isEmpty { log.warning("adopted pair had lost links: re-attached \(repaired.joined(separator: ", "))") }
                machines[syn.ifindex] = PairStateMachine(timing: settings.timing, transparent: settings.transparent, adopted: .active(vf: vfIndex))
                log.info("adopted: state active, VF \(vf.name)(\(vf.ifindex)), links reused")
                return
            }
            // The VF left while no control plane ran: undo now (B13).
            try devices.leave(synthetic: syn.ifindex, reason: "left while hnxdp was not running",
                              switchReason: .departedWhileStopped, onSwitched: nil)
            log.info("adopted: VF ifindex \(vfIndex) left meanwhile, restored the synthetic, state idle")
        }
        try devices.install(synthetic: syn, flags: pair.pairFlags)
        machines[syn.ifindex] = PairStateMachine(timing: settings.timing, transparent: settings.transparent)
        try publish(synIndex: syn.ifindex)
    }

    /// The synthetic itself went away: forget the pair and remove its pins.
    func syntheticGone(_ syn: LinkInfo) throws {
        machines[syn.ifindex] = nil
        try devices.leave(synthetic: syn.ifindex, reason: "synthetic removed", switchReason: .syntheticRemoved, onSwitched: nil)
        try devices.uninstall(synthetic: syn.ifindex)
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

    /// Another device with `syn`'s MAC, as good a VF as the one the pair has (or
    /// is settling on): the pair keeps its VF; said once per device, not on each
    /// of its changes.
    func noteSecondVF(_ link: LinkInfo, syn: LinkInfo, keeping current: Int32) {
        guard secondVFsNoted[syn.ifindex, default: []].insert(link.ifindex).inserted else { return }
        var log = logger
        log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
        let kept = links[current].map { "\($0.name)(\(current))" } ?? "ifindex \(current)"
        log.warning("\(link.name)(\(link.ifindex)) also has \(syn.name)'s MAC: the pair keeps \(kept); \(link.name) is a candidate again only once \(kept) leaves")
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
            // A tie with the VF the pair has (or is settling on) is decided for that one.
            if let current = machines[syn.ifindex]?.phase.vf, let kept = tied.first(where: { $0.link.ifindex == current }) {
                for other in tied where other.link.ifindex != current { noteSecondVF(other.link, syn: syn, keeping: current) }
                return kept.link
            }
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


    /// New settings (SIGHUP reload): the machines take the new timing.
    func apply(_ settings: RunSettings) {
        self.settings = settings
        for synIndex in machines.keys { machines[synIndex]?.retime(settings.timing) }
    }

    /// Starts managing the synthetics the settings select that are not managed yet.
    func manageNewlySelected() throws {
        for link in links.values.sorted(by: { $0.ifindex < $1.ifindex }) where machines[link.ifindex] == nil {
            // A joined or awaited VF is never made a synthetic of its own.
            if machines.values.contains(where: { $0.phase.vf == link.ifindex }) { continue }
            guard isManaged(link, pinned: false) else { continue }
            try manage(link)
            if let vf = vfCandidate(for: link) { try feed(link.ifindex, .vfPresent(vf.ifindex)) }
        }
    }
}
