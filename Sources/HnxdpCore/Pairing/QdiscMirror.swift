import CHnxdpShim
import Glibc
import Logging

/// Egress shaping passes through the pair: frames sent on the synthetic leave
/// through the VF (the tcx egress program redirects them before the
/// synthetic's qdisc runs, into the VF's `dev_queue_xmit`, where the VF's qdisc
/// runs). So while a VF is joined, the synthetic's egress configuration (root
/// qdisc, classes, filters) is copied onto the VF; the VF's own configuration is
/// recorded first and put back when it leaves.
///
/// The pure part (`plan`, `compare`) decides what the VF must carry; `sync`
/// and `restore` make it so through rtnetlink.
public enum QdiscState: Equatable, Sendable, CustomStringConvertible {
    /// Nothing to copy: the synthetic has only the kernel's default qdiscs (the
    /// VF keeps its own), or no VF is joined.
    case none
    /// The VF carries the synthetic's configuration.
    case mirrored
    /// The VF does not carry the synthetic's configuration exactly; why.
    case notFaithful(String)

    public var description: String {
        switch self {
        case .none: return "none"
        case .mirrored: return "mirrored"
        case .notFaithful(let why): return "not-faithful: \(why)"
        }
    }
}

/// What the VF must carry: objects in the order they can be made (parents first).
public struct QdiscPlan: Equatable, Sendable {
    public var objects: [TCObject] = []
    /// Where the copy cannot mean the same as the original (adapted or left out).
    public var caveats: [String] = []
    /// False: the synthetic has nothing of its own; the VF keeps its original configuration.
    public var mirrors = false
}

public enum QdiscMirror {
    /// Qdiscs whose classes are made by the user (`tc class add`); other classful
    /// qdiscs (mq, prio, multiq, mqprio, ets, ...) make their classes themselves.
    static let explicitClassKinds: Set<String> = ["htb", "hfsc", "drr", "qfq", "cbq"]
    /// Qdiscs that limit a rate: per-queue copies on a different number of queues
    /// add up to a different total.
    static let shapers: Set<String> = ["tbf", "htb", "hfsc", "cake", "cbs", "taprio", "cbq"]
    /// Filters a dump cannot make again (a BPF filter is dumped by program id, made by fd).
    static let uncopyableFilters: Set<String> = ["bpf"]

    /// The number of transmit queues a configuration shows: the classes of an mq root, else 1.
    public static func queueCount(_ config: TCConfig) -> Int {
        guard let root = config.root, root.hasPerQueueChildren else { return 1 }
        return max(1, config.classes.filter { $0.handle & 0xFFFF_0000 == root.handle && $0.kind == root.kind }.count)
    }

    /// The configuration objects a device carries that compare: qdiscs the user made,
    /// classes the user made, filters on them.
    public static func userObjects(_ config: TCConfig) -> [TCObject] {
        let owners = Dictionary(config.qdiscs.filter { $0.handle != 0 }.map { ($0.handle, $0.kind) }, uniquingKeysWith: { a, _ in a })
        return config.qdiscs.filter { $0.handle != 0 }
            + config.classes.filter { owners[$0.handle & 0xFFFF_0000].map(explicitClassKinds.contains) ?? false }
            + config.filters.filter { f in !uncopyableFilters.contains(f.kind)
                && (owners[f.parent & 0xFFFF_0000] != nil || f.parent & 0xFFFF_0000 == 0) }
    }

    /// What a VF with `vfQueues` transmit queues must carry to shape like `synthetic`. Pure.
    public static func plan(synthetic: TCConfig, synName: String, vfName: String, vfQueues: Int) -> QdiscPlan {
        var plan = QdiscPlan()
        guard !synthetic.isDefault else { return plan }
        plan.mirrors = true
        for f in synthetic.filters where uncopyableFilters.contains(f.kind) {
            plan.caveats.append("\(synName)'s \(f) cannot be copied (its program is known by id only); left out")
        }
        var objects = userObjects(synthetic)
        if let root = synthetic.root, root.hasPerQueueChildren {
            objects = perQueue(synthetic: synthetic, root: root, objects: objects, synName: synName, vfName: vfName,
                               vfQueues: vfQueues, caveats: &plan.caveats)
        }
        let (ordered, unplaced) = order(objects)
        plan.objects = ordered
        for o in unplaced { plan.caveats.append("\(synName)'s \(o) hangs on nothing that can be made first; left out") }
        return plan
    }

    /// An mq root: one child per transmit queue. Queue k of the VF gets the child of
    /// queue ((k-1) mod N) + 1 of the synthetic; a single-queue VF gets queue 1's
    /// child as its root.
    static func perQueue(synthetic: TCConfig, root: TCObject, objects: [TCObject], synName: String, vfName: String,
                         vfQueues: Int, caveats: inout [String]) -> [TCObject] {
        let major = root.handle & 0xFFFF_0000
        let n = queueCount(synthetic)
        var children: [Int: TCObject] = [:]
        for q in synthetic.qdiscs where q.parent & 0xFFFF_0000 == major && q.parent & 0xFFFF != 0 && !q.isRoot {
            children[Int(q.parent & 0xFFFF)] = q
        }
        // What hangs below a child (its classes, filters and qdiscs) goes with it.
        func below(_ child: TCObject) -> [TCObject] {
            guard child.handle != 0 else { return [] }
            var majors: Set<UInt32> = [child.handle & 0xFFFF_0000], found: [TCObject] = []
            var grew = true
            while grew {
                grew = false
                for o in objects where !found.contains(o) && o != child && majors.contains(o.parent & 0xFFFF_0000) {
                    found.append(o)
                    if o.type == .qdisc { majors.insert(o.handle & 0xFFFF_0000) }
                    grew = true
                }
            }
            return found
        }
        let userChildren = children.values.filter { $0.handle != 0 }
        if vfQueues != n, userChildren.contains(where: { shapers.contains($0.kind) }) {
            caveats.append("\(synName) shapes each of its \(n) transmit queues; \(vfName) has \(vfQueues), so the total differs")
        }
        var out: [TCObject] = root.handle != 0 && vfQueues > 1 ? [root] : []
        if vfQueues <= 1 {
            // No mq on a single-queue device: queue 1's qdisc becomes the root.
            if let first = children[1], first.handle != 0 {
                var r = first
                r.parent = TrafficControlCodec.rootParent
                out = [r] + below(first)
            }
            if n > 1 { caveats.append("\(synName) has \(n) transmit queues, \(vfName) one: queue 1's qdisc is its root") }
            return out
        }
        for k in 1...vfQueues {
            let source = ((k - 1) % n) + 1
            guard let child = children[source], child.handle != 0 else { continue }
            var copy = child
            copy.parent = major | UInt32(k)
            if k <= n {
                out += [copy] + below(child)
            } else {
                copy.handle = 0 // the kernel numbers it
                if !below(child).isEmpty {
                    caveats.append("\(synName)'s \(child) has classes or filters: not copied to \(vfName)'s queue \(k)")
                }
                out.append(copy)
            }
        }
        return out
    }

    /// Orders objects so each comes after what it hangs on: qdiscs and classes by
    /// parent, filters last. Returns what could not be placed.
    static func order(_ objects: [TCObject]) -> (ordered: [TCObject], unplaced: [TCObject]) {
        let explicitClasses = Set(objects.filter { $0.type == .class }.map(\.handle))
        var made: Set<UInt32> = [TrafficControlCodec.rootParent, 0]
        var pending = objects.filter { $0.type != .filter }
        var ordered: [TCObject] = []
        func ready(_ parent: UInt32) -> Bool {
            if made.contains(parent) { return true }
            let major = parent & 0xFFFF_0000
            // A class the qdisc makes itself (mq, prio, ...) exists once its qdisc does.
            return !explicitClasses.contains(parent) && made.contains(major)
        }
        var progress = true
        while progress && !pending.isEmpty {
            progress = false
            for o in pending where ready(o.parent) {
                ordered.append(o)
                made.insert(o.handle)
                progress = true
            }
            pending.removeAll { ordered.contains($0) }
        }
        var unplaced = pending
        for f in objects where f.type == .filter {
            if ready(f.parent) { ordered.append(f) } else { unplaced.append(f) }
        }
        return (ordered, unplaced)
    }

    // MARK: - On the devices

    /// The outcome of a `sync`: the state, and the configurations it ended with
    /// (a caller that sees the same again has nothing to do).
    public struct Outcome: Equatable, Sendable {
        public var state: QdiscState
        public var changed: Bool
        public var synthetic: [[UInt8]]
        public var vf: [[UInt8]]
    }

    static func signatures(_ objects: [TCObject]) -> [[UInt8]] {
        objects.map(TrafficControlCodec.signature).sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// The state of a joined pair as the devices show it now, without changing anything (`dump`).
    public static func observe(netlink: RTNetlink, syn: LinkInfo, vf: LinkInfo) throws -> QdiscState {
        // Only the kernel's default qdiscs on the synthetic: nothing to copy (what `plan`
        // says of such a configuration), known from its qdiscs alone. `status` with many
        // pairs reads them from one snapshot and skips four dumps per pair.
        if TCConfig(qdiscs: try netlink.egressQdiscs(of: syn.ifindex, name: syn.name)).isDefault { return .none }
        let synConfig = try netlink.trafficControl(of: syn.ifindex, name: syn.name)
        let vfConfig = try netlink.trafficControl(of: vf.ifindex, name: vf.name)
        let plan = plan(synthetic: synConfig, synName: syn.name, vfName: vf.name, vfQueues: queueCount(vfConfig))
        guard plan.mirrors else { return .none }
        if let diff = TrafficControlCodec.difference(expected: plan.objects, actual: userObjects(vfConfig), device: vf.name) {
            return .notFaithful("\(diff) (\(syn.name)'s configuration is not on \(vf.name))")
        }
        return plan.caveats.isEmpty ? .mirrored : .notFaithful(plan.caveats.joined(separator: "; "))
    }

    /// Makes the VF carry the synthetic's egress configuration, or, when the synthetic
    /// has only the kernel's defaults, its own `original`. Changes nothing when the VF
    /// already does. A copy the kernel refuses is taken off again (the VF gets its
    /// original back) and reported, never thrown: the pair works without it.
    public static func sync(netlink: RTNetlink, syn: LinkInfo, vf: LinkInfo, original: TCConfig?,
                            logger: Logger) throws -> Outcome {
        let synConfig = try netlink.trafficControl(of: syn.ifindex, name: syn.name)
        var vfConfig = try netlink.trafficControl(of: vf.ifindex, name: vf.name)
        var plan = plan(synthetic: synConfig, synName: syn.name, vfName: vf.name, vfQueues: queueCount(vfConfig))
        if !plan.mirrors {
            let changed = try restore(netlink: netlink, vf: vf, original: original)
            return Outcome(state: .none, changed: changed, synthetic: [],
                           vf: signatures(userObjects(try netlink.trafficControl(of: vf.ifindex, name: vf.name))))
        }
        var changed = false
        var state: QdiscState = plan.caveats.isEmpty ? .mirrored : .notFaithful(plan.caveats.joined(separator: "; "))
        if TrafficControlCodec.difference(expected: plan.objects, actual: userObjects(vfConfig), device: vf.name) != nil {
            changed = true
            try reset(netlink: netlink, vf: vf, config: vfConfig)
            vfConfig = try netlink.trafficControl(of: vf.ifindex, name: vf.name)
            let queues = try transmitQueues(netlink: netlink, vf: vf, defaults: vfConfig, needed: synConfig)
            plan = self.plan(synthetic: synConfig, synName: syn.name, vfName: vf.name, vfQueues: queues)
            state = plan.caveats.isEmpty ? .mirrored : .notFaithful(plan.caveats.joined(separator: "; "))
            do {
                for object in plan.objects { try create(object, netlink: netlink, vf: vf) }
                vfConfig = try netlink.trafficControl(of: vf.ifindex, name: vf.name)
                if let diff = TrafficControlCodec.difference(expected: plan.objects, actual: userObjects(vfConfig), device: vf.name) {
                    state = .notFaithful("the copy reads back differently: \(diff)")
                }
            } catch let error as HnxdpError {
                state = .notFaithful("\(error.message); \(vf.name) keeps its own configuration")
                _ = try restore(netlink: netlink, vf: vf, original: original, force: true)
                vfConfig = try netlink.trafficControl(of: vf.ifindex, name: vf.name)
            }
        }
        return Outcome(state: state, changed: changed, synthetic: signatures(userObjects(synConfig)),
                       vf: signatures(userObjects(vfConfig)))
    }

    /// How many transmit queues the VF has, when the plan depends on it (the
    /// synthetic's root is mq). A VF whose default root is not mq (a device without a
    /// queue of its own, like veth, has noqueue) is asked by making an mq root for a
    /// moment: the kernel refuses it on a single-queue device and otherwise shows one
    /// class per queue in use.
    static func transmitQueues(netlink: RTNetlink, vf: LinkInfo, defaults: TCConfig, needed synthetic: TCConfig) throws -> Int {
        guard let root = synthetic.root, root.hasPerQueueChildren else { return queueCount(defaults) }
        if let vfRoot = defaults.root, vfRoot.hasPerQueueChildren { return queueCount(defaults) }
        let probe = TCObject(type: .qdisc, handle: resetHandle, parent: TrafficControlCodec.rootParent, kind: root.kind,
                             attributes: TrafficControlCodec.encodeAttribute(
                                RTNetlinkCodec.Attribute(type: UInt16(TCA_KIND), value: Array(root.kind.utf8 + [0])[...])))
        do {
            try netlink.tcCreate(probe, ifindex: vf.ifindex, name: vf.name)
        } catch let error as HnxdpError where error.errno == EOPNOTSUPP || error.errno == EINVAL {
            return 1
        }
        let probed = try netlink.trafficControl(of: vf.ifindex, name: vf.name)
        try netlink.tcDeleteQdisc(parent: TrafficControlCodec.rootParent, ifindex: vf.ifindex, name: vf.name)
        return queueCount(probed)
    }

    /// Gives the VF its `original` egress configuration back (nil: unknown, left as it
    /// is). Idempotent: nothing is done when it already reads so. Returns whether it changed anything.
    @discardableResult
    public static func restore(netlink: RTNetlink, vf: LinkInfo, original: TCConfig?, force: Bool = false) throws -> Bool {
        guard let original else { return false }
        let now = try netlink.trafficControl(of: vf.ifindex, name: vf.name)
        let wanted = userObjects(original)
        if !force, TrafficControlCodec.difference(expected: wanted, actual: userObjects(now), device: vf.name) == nil { return false }
        try reset(netlink: netlink, vf: vf, config: now)
        for object in order(wanted).ordered { try create(object, netlink: netlink, vf: vf) }
        return true
    }

    /// Makes one object. A filter that exists already is no error: some filters make
    /// more than one dumped object (u32's first rule makes its hash table 800:);
    /// whether the result is the same is decided by comparing afterwards.
    static func create(_ object: TCObject, netlink: RTNetlink, vf: LinkInfo) throws {
        do {
            try netlink.tcCreate(object, ifindex: vf.ifindex, name: vf.name)
        } catch let error as HnxdpError where error.errno == EEXIST && object.type == .filter {}
    }

    /// A handle for the short-lived root that makes the kernel attach its defaults again.
    static let resetHandle: UInt32 = 0xFFE0_0000

    /// Takes every qdisc the user made off the device: the kernel attaches its defaults.
    static func reset(netlink: RTNetlink, vf: LinkInfo, config: TCConfig) throws {
        guard !config.isDefault else { return }
        if config.root?.handle ?? 0 == 0 {
            // Only children of a default root (e.g. `tc qdisc replace parent :1`): a
            // root replaced and deleted brings back the defaults everywhere.
            let temporary = TCObject(type: .qdisc, handle: resetHandle, parent: TrafficControlCodec.rootParent, kind: "pfifo",
                                     attributes: TrafficControlCodec.encodeAttribute(
                                        RTNetlinkCodec.Attribute(type: UInt16(TCA_KIND), value: Array("pfifo".utf8 + [0])[...])))
            try netlink.tcCreate(temporary, ifindex: vf.ifindex, name: vf.name)
        }
        try netlink.tcDeleteQdisc(parent: TrafficControlCodec.rootParent, ifindex: vf.ifindex, name: vf.name)
    }
}
