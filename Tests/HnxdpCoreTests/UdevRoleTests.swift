@testable import HnxdpCore
import XCTest

/// `hnxdp udev`: the udev properties of each device, on the set-ups users have.
final class UdevRoleTests: XCTestCase {
    let mac: [UInt8] = [0x52, 0x54, 0, 0x12, 0x34, 0x56]
    let otherMAC: [UInt8] = [0x52, 0x54, 0, 0x65, 0x43, 0x21]

    func dev(_ ifindex: Int32, _ name: String, driver: String?, bus: String? = nil, master: Int32? = nil,
             mac: [UInt8]? = nil, flags: UInt32 = LinkInfo.Flag.up, kind: String? = nil) -> PairingPolicy.Device {
        PairingPolicy.Device(link: LinkInfo(ifindex: ifindex, name: name, mac: mac ?? self.mac, flags: flags, mtu: 1500,
                                            kind: kind, masterIndex: master),
                             driver: driver, busInfo: bus)
    }

    func props(_ d: PairingPolicy.Device, _ all: [PairingPolicy.Device], name: String? = nil,
               _ settings: RunSettings = RunSettings()) -> [String] {
        UdevRole.properties(UdevRole.classify(d, udevName: name, among: all, settings: settings))
    }

    func testVirtioWithAPassthroughVF() {
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        let vf = dev(3, "enp1s0", driver: "iavf", bus: "0000:01:00.0")
        XCTAssertEqual(props(virtio, [virtio, vf]), ["HNXDP_ROLE=synthetic"])
        XCTAssertEqual(props(vf, [virtio, vf]), ["HNXDP_ROLE=vf-candidate", "HNXDP_SYNTHETIC=enp0s3"])
    }

    func testNothingWithoutASyntheticOfThatMAC() {
        // A machine where hnxdp is not wanted: NICs, no virtio_net with their MAC.
        let nic = dev(2, "eno1", driver: "ixgbe", bus: "0000:03:00.0")
        let nic2 = dev(3, "eno2", driver: "ixgbe", bus: "0000:03:00.1", mac: otherMAC)
        XCTAssertEqual(props(nic, [nic, nic2]), [])
        // A VF whose synthetic has not appeared yet (boot order): nothing, for now.
        let vf = dev(3, "enp1s0", driver: "iavf", bus: "0000:01:00.0")
        XCTAssertEqual(props(vf, [vf]), [])
        // A virtio_net with another MAC does not make it a candidate.
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0", mac: otherMAC)
        XCTAssertEqual(props(vf, [virtio, vf]), [])
        XCTAssertEqual(props(virtio, [virtio, vf]), ["HNXDP_ROLE=synthetic"])
    }

    func testDevicesWithAMasterAreTheKernels() {
        // net_failover: master, virtio standby and VF primary share the MAC; the kernel pairs them.
        let master = dev(2, "eth0", driver: "net_failover")
        let standby = dev(3, "eth1", driver: "virtio_net", bus: "virtio0", master: 2)
        let primary = dev(4, "eth2", driver: "iavf", bus: "0000:01:00.0", master: 2)
        let all = [master, standby, primary]
        for d in all { XCTAssertEqual(props(d, all), [], d.link.name) }
        // Hyper-V: hv_netvsc pairs its VF itself (not a default synthetic, VF has a master).
        let netvsc = dev(2, "eth0", driver: "hv_netvsc")
        let hvf = dev(3, "enP1s1", driver: "mlx5_core", bus: "0001:00:02.0", master: 2)
        XCTAssertEqual(props(hvf, [netvsc, hvf]), [])
        XCTAssertEqual(props(netvsc, [netvsc, hvf]), [])
        // A bridge port with the synthetic's MAC is not a VF.
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        let port = dev(5, "tap0", driver: "tun", master: 9)
        XCTAssertEqual(props(port, [virtio, port]), [])
    }

    func testMastersAndNonEthernetAreNeverCandidates() {
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        let bond = dev(6, "bond0", driver: "bonding", flags: LinkInfo.Flag.up | 0x400, kind: "bond")
        let vlan = dev(7, "enp0s3.5", driver: "802.1Q VLAN Support", kind: "vlan")
        var ib = dev(8, "ib0", driver: "ib_ipoib")
        ib.link.arpType = 32
        for d in [bond, vlan, ib] { XCTAssertEqual(props(d, [virtio, d]), [], d.link.name) }
    }

    func testSeveralCandidatesAreAllKeptOffNetworkManagers() {
        // run joins none of two equally good VFs, but both have the synthetic's MAC:
        // no network manager should configure either.
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        let a = dev(3, "enp1s0", driver: "iavf", bus: "0000:01:00.0")
        let b = dev(4, "enp2s0", driver: "iavf", bus: "0000:02:00.0")
        XCTAssertEqual(props(a, [virtio, a, b]), ["HNXDP_ROLE=vf-candidate", "HNXDP_SYNTHETIC=enp0s3"])
        XCTAssertEqual(props(b, [virtio, a, b]), ["HNXDP_ROLE=vf-candidate", "HNXDP_SYNTHETIC=enp0s3"])
    }

    func testConfiguredSynthetics() {
        var settings = RunSettings()
        settings.synthetics = ["hn0"]
        let hn0 = dev(2, "hn0", driver: "veth")
        let vf0 = dev(3, "vf0", driver: "veth")
        let virtio = dev(4, "enp0s3", driver: "virtio_net", bus: "virtio0", mac: otherMAC)
        let vfOfVirtio = dev(5, "enp1s0", driver: "iavf", bus: "0000:01:00.0", mac: otherMAC)
        let all = [hn0, vf0, virtio, vfOfVirtio]
        XCTAssertEqual(props(hn0, all, settings), ["HNXDP_ROLE=synthetic"])
        XCTAssertEqual(props(vf0, all, settings), ["HNXDP_ROLE=vf-candidate", "HNXDP_SYNTHETIC=hn0"])
        // Listing synthetics replaces the default: this virtio_net is not managed, so neither is its VF.
        XCTAssertEqual(props(virtio, all, settings), [])
        XCTAssertEqual(props(vfOfVirtio, all, settings), [])
        // Without the list, the veth pair is nothing to hnxdp.
        XCTAssertEqual(props(vf0, all), [])
        XCTAssertEqual(props(hn0, all), [])
    }

    func testTheNameUdevIsAboutToGive() {
        // The synthetic being added is still "eth0"; udev renames it "hn0", the name in the config.
        var settings = RunSettings()
        settings.synthetics = ["hn0"]
        let eth0 = dev(2, "eth0", driver: "veth")
        XCTAssertEqual(props(eth0, [eth0], name: "hn0", settings), ["HNXDP_ROLE=synthetic"])
        XCTAssertEqual(props(eth0, [eth0], name: "eth0", settings), [])
    }

    func testTransparentOffLeavesVFsToTheSystem() {
        var settings = RunSettings()
        settings.transparent = false
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        let vf = dev(3, "enp1s0", driver: "iavf", bus: "0000:01:00.0")
        XCTAssertEqual(props(vf, [virtio, vf], settings), [])
        XCTAssertEqual(props(virtio, [virtio, vf], settings), ["HNXDP_ROLE=synthetic"])
    }

    func testPermanentAddressDecides() {
        // A VF whose current MAC was changed but whose permanent one is the synthetic's: run pairs by
        // the permanent address, so does the rule.
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        var vf = dev(3, "enp1s0", driver: "iavf", bus: "0000:01:00.0", mac: otherMAC)
        vf.link.permanentMAC = mac
        XCTAssertEqual(props(vf, [virtio, vf]), ["HNXDP_ROLE=vf-candidate", "HNXDP_SYNTHETIC=enp0s3"])
    }
}
