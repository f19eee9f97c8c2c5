import ArgumentParser
import Glibc
import HnxdpCore

struct Udev: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "udev",
        abstract: "Print what hnxdp makes of one network device as udev properties (for udev rules).",
        discussion: """
        Used by the udev rule the package installs (81-hnxdp.rules) to keep NetworkManager, \
        systemd-networkd and other network managers off a VF that `hnxdp run` will join. Prints \
        KEY=VALUE lines for udev's IMPORT{program}:

          HNXDP_ROLE=synthetic      a synthetic `hnxdp run` manages (the `synthetic` lines of the \
        config file, or by default a virtio_net device that is not a net_failover standby)
          HNXDP_ROLE=vf-candidate   an Ethernet device without a master that has the MAC of such a \
        synthetic, which exists now: `hnxdp run` joins it
          HNXDP_SYNTHETIC=NAME      with vf-candidate: that synthetic

        Prints nothing for any other device, and nothing for VFs when the config file says \
        `transparent = off` (hnxdp then leaves them to the system). Reads one rtnetlink dump and \
        each Ethernet device's driver; changes nothing, needs no privilege, takes no lock. \
        Always exits 0 once the arguments parse: a device that is gone, or a config file that \
        does not parse (run would not start either), prints nothing and one line on stderr.

        Try it: `hnxdp udev eth1`; what udev recorded: `udevadm info /sys/class/net/eth1`.
        """
    )

    @Argument(help: ArgumentHelp("The device, by its current name (udev's %k).", valueName: "IF"))
    var device: String

    @Option(help: ArgumentHelp("The name udev is about to give the device (udev's $name), also matched against the config file's synthetic lines.", valueName: "NAME"))
    var name: String?

    @Option(help: ArgumentHelp("Read synthetic and transparent from FILE (default: \(Run.defaultConfig) when it exists, as `hnxdp run` does).", valueName: "FILE"))
    var config: String?

    func validate() throws {
        try validateInterfaceName(device, option: "IF")
        if let name { try validateInterfaceName(name, option: "--name") }
    }

    func run() throws {
        var file = config
        if file == nil {
            var st = stat()
            if stat(Run.defaultConfig, &st) == 0 { file = Run.defaultConfig }
        }
        do {
            let classification = try UdevRole.collect(device: device, udevName: name, configFile: file)
            UdevRole.properties(classification).forEach { print($0) }
        } catch let error as HnxdpError {
            fputs("hnxdp: udev \(device): \(error.message); no properties\n", stderr)
        } catch {
            fputs("hnxdp: udev \(device): \(error); no properties\n", stderr)
        }
    }
}
