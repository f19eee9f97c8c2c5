import Logging

/// SIGHUP: `hnxdp run` reads its settings again (the `--config` file, with the
/// command line over it) and applies what can change while pairs are joined
/// (`RunReload`). Joined pairs are not touched; a file that does not parse
/// changes nothing.
extension ControlPlane {
    func reload() {
        guard let source = reloadSource else {
            logger.info("SIGHUP: no --config file, nothing to reload (settings come from the command line only)")
            return
        }
        let requested: RunSettings
        do {
            requested = try source.read()
        } catch {
            logger.error("SIGHUP: reloading \(source.description) failed, keeping the settings in use: \(error)")
            return
        }
        let plan = RunReload.plan(current: settings, requested: requested)
        reconciler.apply(plan.settings)
        logger.info("SIGHUP: reloaded \(source.description): \(plan.changes.isEmpty ? "nothing changed" : plan.changes.joined(separator: ", "))")
        for refused in plan.refused { logger.warning("SIGHUP: \(refused)") }
        if !settings.synthetics.isEmpty {
            for synIndex in reconciler.machines.keys.sorted() {
                guard let syn = reconciler.links[synIndex], !settings.synthetics.contains(syn.name) else { continue }
                var log = logger
                log[metadataKey: "pair"] = "\(syn.name)(\(syn.ifindex))"
                log.warning("SIGHUP: \(syn.name) is no longer listed as a synthetic: still managed (its pair is pinned, and pinned pairs are always adopted); `hnxdp detach --synthetic \(syn.name)` removes it")
            }
        }
        do { try reconciler.manageNewlySelected() } catch {
            logger.error("SIGHUP: managing newly listed synthetics: \(error)")
        }
    }
}
