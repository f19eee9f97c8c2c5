import CHnxdpShim
import CLibBPF
import Glibc

/// One datapath program attached to one tc hook (ingress or egress) of one
/// device, recorded at a pin so it outlives the process that made it (B19):
///
/// - tcx: the pin is the tcx link itself; detaching the link detaches the program.
/// - classic: a cls_bpf direct-action filter on the device's clsact qdisc at
///   (`HNXDP_TC_HANDLE`, `HNXDP_TC_PRIORITY`). A filter cannot be pinned, so the
///   pin is a one-entry map holding `struct hnxdp_tc_attachment` (device,
///   direction, program id, whether hnxdp created the qdisc): what adoption
///   checks and what detach removes. It is pinned before the qdisc and the
///   filter are made and removed after them, so a process killed at any point
///   leaves a record from which detach removes exactly what hnxdp made.
///
/// Which of the two a pin is, is read from the pin itself, so pairs attached
/// in either mode are adopted and detached by any later process.
public enum TcHook {
    /// Attaches `program` at the hook in `mode` and records it at `pinPath`.
    public static func attach(_ program: BPFDescriptor, ifindex: Int32, ifname: String, ingress: Bool,
                              pinPath: String, mode: TcAttachMode) throws {
        switch mode {
        case .tcx: try attachTcx(program, ifindex: ifindex, ifname: ifname, ingress: ingress, pinPath: pinPath)
        case .classic: try attachClassic(program, ifindex: ifindex, ifname: ifname, ingress: ingress, pinPath: pinPath)
        }
    }

    /// Detaches what the pin at `pinPath` records and removes the pin; false when
    /// there was none. A device that is gone took its link or filter with it.
    @discardableResult
    public static func detach(pinPath: String) throws -> Bool {
        guard let pinned = try BPFDescriptor.openPinned(pinPath) else { return false }
        switch try pinned.objectKind() {
        case .link:
            // Detaching an already detached link (device gone) answers ENOLINK/EINVAL: fine.
            _ = bpf_link_detach(pinned.fd)
        case .map:
            // The filter, then the qdisc hnxdp made, then the record: killed in between,
            // the record is still there to finish the job.
            if let record = try? attachmentRecord(pinned) {
                if let prog = classicProgramID(record), prog == record.prog_id {
                    let ingress = record.flags & UInt32(HNXDP_TC_F_INGRESS) != 0
                    let rc = hnxdp_tc_detach(Int32(bitPattern: record.ifindex), ingress ? 1 : 0, record.handle, record.priority)
                    if rc < 0 && rc != -ENOENT && rc != -ENODEV && rc != -EINVAL {
                        throw HnxdpError.system("remove hnxdp's tc filter from ifindex \(record.ifindex)", errno: -rc)
                    }
                }
                removeQdiscIfOurs(record, exceptPin: pinPath)
            }
        case .program, .other:
            break // not ours to detach: only the pin goes
        }
        try FileSystem.remove(pinPath)
        return true
    }

    /// Whether the pin's program is still attached (its device exists, nobody removed it).
    public static func isAttached(pinPath: String) -> Bool {
        guard let pinned = try? BPFDescriptor.openPinned(pinPath), let kind = try? pinned.objectKind() else { return false }
        switch kind {
        case .link:
            return ((try? pinned.info(bpf_link_info.self, what: pinPath))?.prog_id ?? 0) != 0
        case .map:
            guard let record = try? attachmentRecord(pinned) else { return false }
            return classicProgramID(record) == record.prog_id
        case .program, .other:
            return false
        }
    }

    /// The mode of the attachment recorded at `pinPath`, nil when there is none.
    public static func mode(pinPath: String) -> TcAttachMode? {
        guard let pinned = try? BPFDescriptor.openPinned(pinPath), let kind = try? pinned.objectKind() else { return nil }
        switch kind {
        case .link: return .tcx
        case .map: return .classic
        case .program, .other: return nil
        }
    }

    // MARK: - tcx

    private static func attachTcx(_ program: BPFDescriptor, ifindex: Int32, ifname: String, ingress: Bool, pinPath: String) throws {
        let fd = hnxdp_tcx_attach(program.fd, ifindex, ingress ? 1 : 0)
        if fd < 0 {
            throw HnxdpError.system("attach tcx \(ingress ? "ingress" : "egress") on \(ifname) (ifindex \(ifindex))", errno: -fd)
        }
        let link = BPFDescriptor(fd)
        do {
            try link.pin(at: pinPath)
        } catch {
            _ = bpf_link_detach(link.fd)
            throw error
        }
    }

    // MARK: - classic tc

    private static func attachClassic(_ program: BPFDescriptor, ifindex: Int32, ifname: String, ingress: Bool, pinPath: String) throws {
        let hook = "tc \(ingress ? "ingress" : "egress") of \(ifname) (ifindex \(ifindex))"
        let progID = try program.programID()
        // Whatever holds hnxdp's place on this hook must be an hnxdp program (one a
        // crash left behind, replaced below); anything else is the user's.
        var present: UInt32 = 0
        if hnxdp_tc_query(ifindex, ingress ? 1 : 0, UInt32(HNXDP_TC_HANDLE), UInt32(HNXDP_TC_PRIORITY), &present) == 0 {
            let name = BPFDescriptor.programName(id: present) ?? "?"
            guard name.hasPrefix(HNXDP_NAME_PREFIX) else {
                throw HnxdpError(.runtime, "the \(hook) has a filter at priority \(HNXDP_TC_PRIORITY) handle 0x\(String(HNXDP_TC_HANDLE, radix: 16)) running program \(present) (\(name)), not hnxdp's: remove it or move it to another priority")
            }
        }
        // The record first, then the qdisc, then the filter: a process killed at any
        // point leaves a record whose detach removes exactly what was made (the
        // record says "created" only for a clsact that was not there before).
        let netlink = try RTNetlink()
        let existed = try netlink.hasClsact(ifindex: ifindex)
        var record = hnxdp_tc_attachment()
        record.ifindex = UInt32(bitPattern: ifindex)
        record.flags = (ingress ? UInt32(HNXDP_TC_F_INGRESS) : 0)
            | (!existed || siblingCreatedQdisc(ifindex: record.ifindex, besides: pinPath) ? UInt32(HNXDP_TC_F_CREATED_QDISC) : 0)
        record.handle = UInt32(HNXDP_TC_HANDLE)
        record.priority = UInt32(HNXDP_TC_PRIORITY)
        record.prog_id = progID
        let map = try BPFDescriptor.createArray(name: HNXDP_MAP_TC_ATTACHMENT, value: record)
        try map.pin(at: pinPath)
        func undo() {
            removeQdiscIfOurs(record, exceptPin: pinPath)
            _ = try? FileSystem.remove(pinPath)
        }
        let created = hnxdp_tc_hook_create(ifindex)
        if created < 0 {
            undo()
            if created == -ENOENT {
                throw HnxdpError(.privilege, "this kernel has no clsact qdisc (module sch_ingress, CONFIG_NET_SCH_INGRESS), which the classic tc attachment needs: load it (modprobe sch_ingress)")
            }
            throw HnxdpError.system("create the clsact qdisc of \(ifname) (ifindex \(ifindex))", errno: -created)
        }
        let rc = hnxdp_tc_attach(ifindex, ingress ? 1 : 0, program.fd, record.handle, record.priority, present != 0 ? 1 : 0)
        if rc < 0 {
            undo()
            if rc == -ENOENT {
                throw HnxdpError(.privilege, "this kernel has no cls_bpf classifier (module cls_bpf, CONFIG_NET_CLS_BPF), which the classic tc attachment needs: load it (modprobe cls_bpf)")
            }
            throw HnxdpError.system("attach \(hook) (cls_bpf direct-action, priority \(HNXDP_TC_PRIORITY))", errno: -rc)
        }
    }

    /// The record a classic attachment's pin holds.
    static func attachmentRecord(_ pinned: BPFDescriptor) throws -> hnxdp_tc_attachment {
        let map = try BPFMap<UInt32, hnxdp_tc_attachment>(name: HNXDP_MAP_TC_ATTACHMENT, descriptor: pinned)
        guard let record = try map.lookup(0) else { throw HnxdpError(.runtime, "empty tc attachment record") }
        return record
    }

    /// The program id of the filter at the record's place, nil when there is none.
    private static func classicProgramID(_ record: hnxdp_tc_attachment) -> UInt32? {
        var prog: UInt32 = 0
        let ingress = record.flags & UInt32(HNXDP_TC_F_INGRESS) != 0
        let rc = hnxdp_tc_query(Int32(bitPattern: record.ifindex), ingress ? 1 : 0, record.handle, record.priority, &prog)
        return rc == 0 ? prog : nil
    }

    /// Every classic attachment record in the pin directory of `pinPath` other than it.
    private static func siblingRecords(of pinPath: String) -> [hnxdp_tc_attachment] {
        let dir = String(pinPath[..<(pinPath.lastIndex(of: "/") ?? pinPath.endIndex)])
        return FileSystem.list(dir).compactMap { name -> hnxdp_tc_attachment? in
            let path = "\(dir)/\(name)"
            guard path != pinPath, let d = try? BPFDescriptor.openPinned(path), (try? d.objectKind()) == .map else { return nil }
            return try? attachmentRecord(d)
        }
    }

    /// Whether hnxdp made the clsact qdisc of `ifindex` for another hook of the same pair.
    private static func siblingCreatedQdisc(ifindex: UInt32, besides pinPath: String) -> Bool {
        siblingRecords(of: pinPath).contains { $0.ifindex == ifindex && $0.flags & UInt32(HNXDP_TC_F_CREATED_QDISC) != 0 }
    }

    /// Removes the clsact qdisc hnxdp created for `record` once nothing is attached
    /// to it: no other hnxdp record for the device and no filter of anyone on it.
    /// A qdisc that was there before hnxdp stays.
    private static func removeQdiscIfOurs(_ record: hnxdp_tc_attachment, exceptPin: String) {
        guard record.flags & UInt32(HNXDP_TC_F_CREATED_QDISC) != 0 else { return }
        if siblingRecords(of: exceptPin).contains(where: { $0.ifindex == record.ifindex }) { return }
        let ifindex = Int32(bitPattern: record.ifindex)
        guard let netlink = try? RTNetlink(),
              let filters = try? netlink.clsactFilterCount(ifindex: ifindex), filters == 0 else { return }
        _ = hnxdp_tc_hook_destroy(ifindex)
    }
}
