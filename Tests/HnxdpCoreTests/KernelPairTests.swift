@testable import HnxdpCore
import XCTest

/// Which pairs the kernel made itself (coexistence), found from link
/// descriptions shaped like what net_failover and hv_netvsc guests report.
final class KernelPairTests: XCTestCase {
    let mac: [UInt8] = [0x52, 0x54, 0, 0x12, 0x34, 0x56]

    func dev(_ ifindex: Int32, _ name: String, driver: String?, master: Int32? = nil,
             kind: String? = nil) -> PairingPolicy.Device {
        PairingPolicy.Device(link: LinkInfo(ifindex: ifindex, name: name, mac: mac, flags: LinkInfo.Flag.up, mtu: 1500,
                                            kind: kind, masterIndex: master),
                             driver: driver, busInfo: nil)
    }

    func testNetFailoverWithPrimary() {
        // eth0: master; eth1: virtio standby; eth2: e1000e primary (both slaves of eth0).
        let devices = [dev(2, "eth0", driver: "net_failover"), dev(3, "eth1", driver: "virtio_net", master: 2),
                       dev(4, "eth2", driver: "e1000e", master: 2), dev(5, "lo0", driver: nil)]
        let pairs = KernelPair.find(in: devices)
        XCTAssertEqual(pairs.count, 1)
        XCTAssertEqual(pairs[0].kind, .netFailover)
        XCTAssertEqual(pairs[0].master.name, "eth0")
        XCTAssertEqual(pairs[0].synthetic.name, "eth1", "sockets bind to the standby, the path that is always there")
        XCTAssertEqual(pairs[0].vf?.name, "eth2")
        XCTAssertFalse(pairs[0].kernelPropagatesXDP)
        for name in ["eth0", "eth1", "eth2"] {
            XCTAssertEqual(KernelPair.containing(name, in: devices)?.master.ifindex, 2, name)
        }
        XCTAssertNil(KernelPair.containing("lo0", in: devices))
        XCTAssertEqual(pairs[0].summary, "eth0(2): net_failover, standby eth1(3), VF eth2(4)")
    }

    func testNetFailoverWhileThePrimaryIsUnplugged() {
        // The primary's order does not matter: the standby is the virtio_net slave.
        let devices = [dev(3, "eth1", driver: "virtio_net", master: 2), dev(2, "eth0", driver: "net_failover")]
        let pair = KernelPair.find(in: devices).first
        XCTAssertEqual(pair?.synthetic.name, "eth1")
        XCTAssertNil(pair?.vf)
        XCTAssertEqual(pair?.summary, "eth0(2): net_failover, standby eth1(3), no VF")
    }

    func testNetFailoverWithoutStandbyIsNoPair() {
        // Nothing to bind the always-there path to.
        XCTAssertEqual(KernelPair.find(in: [dev(2, "eth0", driver: "net_failover"), dev(4, "eth2", driver: "e1000e", master: 2)]), [])
    }

    func testNetvsc() {
        let devices = [dev(2, "eth0", driver: "hv_netvsc"), dev(3, "enP1s1", driver: "mlx5_core", master: 2),
                       dev(4, "eth1", driver: "hv_netvsc")]
        let pairs = KernelPair.find(in: devices)
        XCTAssertEqual(pairs.map(\.master.name), ["eth0", "eth1"])
        XCTAssertEqual(pairs[0].synthetic.name, "eth0", "the netvsc device is its own synthetic")
        XCTAssertEqual(pairs[0].vf?.name, "enP1s1")
        XCTAssertTrue(pairs[0].kernelPropagatesXDP, "hv_netvsc gives its XDP program to the VF itself")
        XCTAssertNil(pairs[1].vf)
        XCTAssertEqual(KernelPair.containing("enP1s1", in: devices)?.master.name, "eth0")
    }

    func testBridgesBondsAndPlainPairsAreNotKernelPairs() {
        let devices = [dev(2, "br0", driver: "bridge", kind: "bridge"), dev(3, "eth1", driver: "virtio_net", master: 2),
                       dev(4, "bond0", driver: "bonding", kind: "bond"), dev(5, "eth2", driver: "e1000e", master: 4),
                       dev(6, "enp0s3", driver: "virtio_net"), dev(7, "enp1s0", driver: "e1000e")]
        XCTAssertEqual(KernelPair.find(in: devices), [])
    }
}
