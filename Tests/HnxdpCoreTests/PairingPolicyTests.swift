@testable import HnxdpCore
import XCTest

/// Which synthetics `run` takes by itself and which VF it joins, on the set-ups
/// users have (fixtures shaped like what those kernels report).
final class PairingPolicyTests: XCTestCase {
    let mac: [UInt8] = [0x52, 0x54, 0, 0x12, 0x34, 0x56]

    func dev(_ ifindex: Int32, _ name: String, driver: String?, bus: String? = nil, master: Int32? = nil,
             flags: UInt32 = LinkInfo.Flag.up, kind: String? = nil) -> PairingPolicy.Device {
        PairingPolicy.Device(link: LinkInfo(ifindex: ifindex, name: name, mac: mac, flags: flags, mtu: 1500, kind: kind,
                                            masterIndex: master),
                             driver: driver, busInfo: bus)
    }

    func testVirtioWithAPassthroughVF() {
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        let vf = dev(3, "enp1s0", driver: "e1000e", bus: "0000:01:00.0")
        XCTAssertTrue(PairingPolicy.isDefaultSynthetic(virtio))
        XCTAssertFalse(PairingPolicy.isDefaultSynthetic(vf))
        XCTAssertEqual(PairingPolicy.chooseVF(for: virtio, among: [virtio, vf], taken: []), .vf(vf))
        XCTAssertEqual(PairingPolicy.chooseVF(for: virtio, among: [virtio, vf], taken: [3]), .none, "a VF of another pair")
    }

    func testHyperVNetvscIsTheKernelsPair() {
        // hv_netvsc links its VF under the synthetic (IFLA_MASTER, IFF_SLAVE).
        let netvsc = dev(2, "eth0", driver: "hv_netvsc", bus: "f8615163-0000-1000-2000-000d3a123456")
        let vf = dev(3, "enP1s1", driver: "mlx5_core", bus: "0001:00:02.0", master: 2, flags: LinkInfo.Flag.up | LinkInfo.Flag.slave)
        XCTAssertFalse(PairingPolicy.isDefaultSynthetic(netvsc), "never steered by default")
        XCTAssertEqual(PairingPolicy.chooseVF(for: netvsc, among: [netvsc, vf], taken: []), .none)
    }

    func testNetFailoverIsNeverSteered() {
        // eth0: net_failover master; eth1: virtio standby; eth2: primary VF; both slaves with IFLA_MASTER.
        let master = dev(2, "eth0", driver: "net_failover")
        let standby = dev(3, "eth1", driver: "virtio_net", bus: "virtio0", master: 2)
        let primary = dev(4, "eth2", driver: "e1000e", bus: "0000:01:00.0", master: 2)
        XCTAssertFalse(PairingPolicy.isDefaultSynthetic(master))
        XCTAssertFalse(PairingPolicy.isDefaultSynthetic(standby), "a failover standby is not a synthetic")
        let all = [master, standby, primary]
        XCTAssertEqual(PairingPolicy.chooseVF(for: standby, among: all, taken: []), .none, "neither the master nor the primary")
        // Not even when named with --synthetic / attach --synthetic.
        XCTAssertEqual(PairingPolicy.syntheticRefusal(master, master: nil),
                       "eth0 is a net_failover master: the kernel pairs its VF itself (kernel failover is active), hnxdp never steers it")
        XCTAssertTrue(PairingPolicy.syntheticRefusal(standby, master: master)?.contains("eth1 is the standby of kernel failover eth0(2)") == true)
    }

    func testNamedSynthetics() {
        let netvsc = dev(2, "eth0", driver: "hv_netvsc")
        XCTAssertTrue(PairingPolicy.syntheticRefusal(netvsc, master: nil)?.contains("hv_netvsc") == true)
        let virtio = dev(3, "enp0s3", driver: "virtio_net", bus: "virtio0")
        XCTAssertNil(PairingPolicy.syntheticRefusal(virtio, master: nil))
        // A bridge or bond port may be a synthetic (the guest bridges its NIC).
        let bridge = dev(4, "br0", driver: "bridge", kind: "bridge")
        let port = dev(5, "enp0s4", driver: "virtio_net", bus: "virtio1", master: 4)
        XCTAssertNil(PairingPolicy.syntheticRefusal(port, master: bridge))
    }

    func testABridgePortIsNeverTheVF() {
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        let port = dev(3, "enp1s0", driver: "e1000e", bus: "0000:01:00.0", master: 9)
        XCTAssertEqual(PairingPolicy.chooseVF(for: virtio, among: [virtio, port], taken: []), .none)
    }

    func testAPCIFunctionBeatsAnythingElse() {
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        let veth = dev(5, "v0", driver: "veth", bus: "")
        let vf = dev(3, "enp1s0", driver: "vmxnet3", bus: "0000:0b:00.0")
        XCTAssertEqual(PairingPolicy.chooseVF(for: virtio, among: [veth, vf, virtio], taken: []), .vf(vf))
    }

    func testATieIsRefusedWithTheCandidates() {
        let virtio = dev(2, "enp0s3", driver: "virtio_net", bus: "virtio0")
        let a = dev(7, "enp2s0", driver: "e1000e", bus: "0000:02:00.0")
        let b = dev(3, "enp1s0", driver: "e1000e", bus: "0000:01:00.0")
        XCTAssertEqual(PairingPolicy.chooseVF(for: virtio, among: [a, virtio, b], taken: []), .ambiguous([b, a]))
        let v1 = dev(4, "vf0", driver: "veth", bus: ""), v2 = dev(5, "vf1", driver: "veth", bus: "")
        XCTAssertEqual(PairingPolicy.chooseVF(for: virtio, among: [v1, v2], taken: []), .ambiguous([v1, v2]))
    }

    func testPCIAddressesAreRecognised() {
        XCTAssertTrue(dev(1, "x", driver: "e1000e", bus: "0000:00:1f.6").isPCIFunction)
        for bus in ["virtio0", "", "vif-0", "0000:00:1f", "f8615163-0000-1000-2000-000d3a123456", "0000:0g:00.0"] {
            XCTAssertFalse(dev(1, "x", driver: "x", bus: bus).isPCIFunction, bus)
        }
    }
}
