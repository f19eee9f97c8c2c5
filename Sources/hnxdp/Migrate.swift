import ArgumentParser
import HnxdpCore
import Logging

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Move this network namespace's pairs onto pins this hnxdp can use, after an upgrade.",
        discussion: """
        hnxdp refuses to use pins made by an hnxdp with another pin layout (or made before pins \
        carried one) and names this command. For every pair, migrate puts both devices back from \
        their write-ahead records (as `hnxdp detach --all` does), removes the old pins, and \
        attaches the same synthetic/VF pairs again with this hnxdp; the records of the devices' \
        originals are never removed before the devices read as recorded. Pairs `hnxdp run` \
        installed without a VF are not attached again: start `run` afterwards and it installs \
        them.

        `hnxdp run` must not be running in the namespace: stop it first (e.g. `systemctl stop \
        hnxdp`), migrate, then start it again. If migrate is interrupted, run it again to finish \
        (or `hnxdp detach --all` to put everything back and attach nothing). With pins this \
        hnxdp can use, or none, it changes nothing.
        """
    )

    @OptionGroup var common: CommonOptions

    func run() throws {
        try common.locked("migrate", migrate)
    }

    private func migrate(_ logger: Logger) throws {
        let migration = PinMigration(lifecycle: try common.lifecycle(logger))
        let outcome = try migration.migrate()
        guard let from = outcome.from else {
            print("nothing to migrate: the pins of this network namespace are this hnxdp's (pin layout \(PinMeta.thisLayout)), or there are none")
            return
        }
        print("migrated from \(from) to hnxdp \(HnxdpVersion.string) (pin layout \(PinMeta.thisLayout)): \(outcome.attached.count) pair\(outcome.attached.count == 1 ? "" : "s") attached again\(outcome.attached.isEmpty ? "" : ": " + outcome.attached.joined(separator: ", "))")
        if !outcome.failed.isEmpty {
            throw HnxdpError(.runtime, "not attached again (their devices have their originals): \(outcome.failed.joined(separator: "; "))")
        }
    }
}
