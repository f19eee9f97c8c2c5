// FoundationEssentials, not Foundation: Foundation links ICU (about 30 MB) into the static binary.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `hnxdp udev IF`: what hnxdp makes of one network device, as udev
/// `IMPORT{program}` properties, so that the packaged udev rule can keep
/// NetworkManager, systemd-networkd and friends off a VF `hnxdp run` will join.
///
/// udev cannot compare one device's MAC with another's; this does, with the
/// pairing policy `run` uses (`PairingPolicy`, `Eligibility`) and the
/// `synthetic`/`transparent` lines of run's config file. A device is only ever
/// called a VF candidate when a synthetic with its MAC exists now: on a machine
/// without one, nothing is printed and the rule does nothing.
public enum UdevRole {
    public enum Role: String, Sendable {
        /// A synthetic `run` manages (by config, or virtio_net by default).
        case synthetic
        /// An eligible device with a managed synthetic's MAC: `run` joins it
        /// (or, with several, joins none until one is left); no network manager
        /// should configure it.
        case vfCandidate = "vf-candidate"
    }

    public struct Classification: Equatable, Sendable {
        public var role: Role
        /// For a VF candidate, the synthetic whose MAC it has.
        public var synthetic: String?
    }

    /// The udev property names, also matched by the rule and the .network file.
    public static let roleKey = "HNXDP_ROLE"
    public static let syntheticKey = "HNXDP_SYNTHETIC"

    /// Whether `device` is a synthetic `run` would manage with `settings`
    /// (`name`: the name it is about to get from udev, for a device being added
    /// and renamed; config lines name devices by their final name).
    static func isSynthetic(_ device: PairingPolicy.Device, alsoNamed name: String?, settings: RunSettings) -> Bool {
        if settings.synthetics.isEmpty { return PairingPolicy.isDefaultSynthetic(device, drivers: settings.effectiveSyntheticDrivers) }
        guard Eligibility.ineligibilityReason(device.link) == nil else { return false }
        return settings.synthetics.contains(device.link.name) || name.map(settings.synthetics.contains) == true
    }

    /// What `target` is to hnxdp among `devices` (the namespace's devices, target
    /// included or not), or nil when hnxdp has no business with it. Pure.
    public static func classify(_ target: PairingPolicy.Device, udevName: String? = nil,
                                among devices: [PairingPolicy.Device], settings: RunSettings) -> Classification? {
        if isSynthetic(target, alsoNamed: udevName, settings: settings) { return Classification(role: .synthetic, synthetic: nil) }
        // The VF rules of `run` (PairingPolicy.chooseVF): Ethernet, no master, not a
        // device that pairs VFs itself, and the MAC of a synthetic that exists now.
        guard settings.transparent,
              Eligibility.vfIneligibilityReason(target.link) == nil,
              !PairingPolicy.kernelPairingDrivers.contains(target.driver ?? "") else { return nil }
        let address = Eligibility.matchAddress(target.link)
        let owner = devices
            .filter { $0.link.ifindex != target.link.ifindex && isSynthetic($0, alsoNamed: nil, settings: settings) }
            .filter { Eligibility.matchAddress($0.link) == address }
            .min { $0.link.ifindex < $1.link.ifindex }
        guard let owner else { return nil }
        return Classification(role: .vfCandidate, synthetic: owner.link.name)
    }

    /// The `KEY=VALUE` lines udev imports (none for nil).
    public static func properties(_ classification: Classification?) -> [String] {
        guard let c = classification else { return [] }
        var lines = ["\(roleKey)=\(c.role.rawValue)"]
        if let s = c.synthetic { lines.append("\(syntheticKey)=\(s)") }
        return lines
    }

    /// Reads the namespace's devices (one rtnetlink dump and `ethtool -i` per
    /// Ethernet device; no BPF, no lock, nothing changed) and `configFile`
    /// (nil: none), and classifies `device` (its current name; `udevName`
    /// the one udev is about to give it). Throws when a step fails; the CLI
    /// turns that into no output (udev then sets nothing).
    public static func collect(device: String, udevName: String?, configFile: String?) throws -> Classification? {
        var settings = RunSettings()
        if let configFile {
            let text = try HostEnvironment.readText(configFile)
            settings = try RunConfig.parse(bytes: Array(text.utf8), file: configFile)
        }
        let links = try RTNetlink().links()
        guard let target = links.first(where: { $0.name == device }) else {
            throw HnxdpError(.badInput, "no network device named \(quoted(device)) in this network namespace")
        }
        func policyDevice(_ link: LinkInfo) -> PairingPolicy.Device {
            let info = Ethtool.driverInfo(of: link.name)
            return PairingPolicy.Device(link: link, driver: info?.driver, busInfo: info?.busInfo)
        }
        // Only Ethernet devices can be either role: nothing else costs an ioctl.
        guard Eligibility.ineligibilityReason(target) == nil else { return nil }
        let devices = links.filter { Eligibility.ineligibilityReason($0) == nil }.map(policyDevice)
        let me = devices.first { $0.link.ifindex == target.ifindex } ?? policyDevice(target)
        return classify(me, udevName: udevName, among: devices, settings: settings)
    }
}
