import CHnxdpShim
import Glibc

/// `hnxdp run` keeps its pins: pins removed under it (`rm`, bpffs unmounted)
/// are noticed through inotify on the pin directories and made again from the
/// live objects, or, where that is impossible, every pair is undone (B19, B21).
extension ControlPlane {
    /// Watches the namespace's pin directory and every pair directory (again:
    /// a directory made anew needs a new watch; an existing watch is kept).
    func watchPins() {
        guard let pinWatch else { return }
        let mask = IN_DELETE | IN_DELETE_SELF | IN_MOVED_FROM | IN_MOVE_SELF | IN_UNMOUNT
        for dir in [layout.namespaceDirectory] + reconciler.machines.keys.sorted().map({ layout.pairDirectory(synthetic: $0) }) {
            pinWatch.watch(dir, mask)
        }
    }

    /// Something was removed from the pin directories: our own changes leave every
    /// pin in place, so a missing one was removed under us. The datapath's maps and
    /// programs live on in this process: they are pinned again and every missing
    /// link attached again. Where that is impossible (no bpffs any more), every
    /// pair is undone from its write-ahead record and the run ends.
    func checkPins() throws {
        guard settings.transparent else { return }
        var repaired: [String] = []
        // A removal may still be under way (`rm -r` walks the tree while we pin):
        // what it races with (ENOENT, EEXIST, ENOTEMPTY) is tried again for up to a second.
        var attempt = 0
        do {
            while true {
                do {
                    if !FileSystem.exists(layout.objectPath(HNXDP_MAP_PAIRS)) {
                        try HostEnvironment.requireBPFFS(root: layout.root)
                        try datapath.pinAgain()
                        if !repaired.contains("maps and programs") { repaired.append("maps and programs") }
                    }
                    for synIndex in reconciler.machines.keys.sorted() {
                        guard let syn = reconciler.links[synIndex], try datapath.pairs.lookup(UInt32(bitPattern: synIndex)) != nil else { continue }
                        var vf: LinkInfo? = nil
                        if case .active(let v) = reconciler.machines[synIndex]?.phase { vf = reconciler.links[v] }
                        repaired += try reconciler.devices.reattachLinks(synthetic: syn, vf: vf)
                    }
                    break
                } catch let e as HnxdpError where [ENOENT, EEXIST, ENOTEMPTY].contains(e.errno ?? 0) && attempt < 40 {
                    attempt += 1
                    var pause = timespec(tv_sec: 0, tv_nsec: 25_000_000)
                    nanosleep(&pause, nil)
                }
            }
        } catch {
            logger.critical("hnxdp's pins in \(layout.namespaceDirectory) were removed and cannot be made again (\(error)): undoing every pair from its write-ahead record")
            for synIndex in reconciler.machines.keys.sorted() {
                do { try reconciler.devices.leave(synthetic: synIndex, reason: "pins lost", switchReason: .pinsLost, onSwitched: nil) } catch {
                    logger.error("pair ifindex \(synIndex): \(error)")
                }
            }
            throw HnxdpError(.runtime, "the pins in \(layout.namespaceDirectory) are gone (bpffs unmounted?) and cannot be made again: every pair was undone, devices restored; start hnxdp run again once bpffs is mounted")
        }
        if !repaired.isEmpty {
            logger.error("hnxdp's pins were removed under it (bpffs unmounted or files deleted): pinned and attached again: \(repaired.joined(separator: ", "))")
        }
    }
}
