// RTNetlink.swift - a NETLINK_ROUTE client for links: get, dump, set, notifications.
//
// All bytes are built and parsed by RTNetlinkCodec; this file only moves them
// through the socket. Every system call goes through `RTNetlinkSocket.retrying`,
// which retries EINTR and turns a failure into HnxdpError.system(what, errno:).

import CHnxdpShim
import Glibc

/// A NETLINK_ROUTE client in the network namespace of the calling thread at creation time
/// (under `nsenter --net`, the target namespace).
///
/// Requests are synchronous: each gets a fresh sequence number, and the answer is the
/// messages from the kernel carrying that number (NLMSG_DONE ends a dump, NLMSG_ERROR
/// with code 0 acknowledges a change, a non-zero code becomes an `HnxdpError`).
///
/// With `subscribeToLinks`, a second socket joins RTNLGRP_LINK; `readEvents()` reads it and
/// `fileDescriptor` is that socket, for `poll`. Requests keep their own socket so that a
/// burst of notifications can never crowd out (and make the kernel drop) a reply.
///
/// Not thread-safe: use one instance per thread or serialise access.
public final class RTNetlink {
    /// Socket for requests; replaced after an exchange that was abandoned half-way.
    private var requestSocket: RTNetlinkSocket?
    /// Set by `beginQdiscSnapshot`: one qdisc dump of the namespace that every
    /// `trafficControl(of:)` in it reads instead of dumping again.
    var qdiscSnapshot: [NetlinkMessage]?
    /// Socket joined to RTNLGRP_LINK, when subscribed.
    private let eventSocket: RTNetlinkSocket?
    private var lastSeq: UInt32
    /// NETLINK_ROUTE, or NETLINK_GENERIC for `RTNetlink.generic()`.
    private let netlinkProtocol: Int32

    /// How many times a dump interrupted by concurrent changes (NLM_F_DUMP_INTR) is retried.
    static let dumpAttempts = 5
    /// A request socket gives up waiting for the kernel's answer after this long (ETIMEDOUT).
    static let replyTimeoutSeconds = 30

    /// Opens a request socket in the current network namespace.
    public convenience init() throws {
        try self.init(subscribeToLinks: false)
    }

    /// Opens a request socket in the current network namespace and, with `subscribeToLinks`,
    /// one more joined to the RTNLGRP_LINK notification group (read with `readEvents()`).
    public convenience init(subscribeToLinks: Bool) throws {
        try self.init(subscribeToLinks: subscribeToLinks, netlinkProtocol: NETLINK_ROUTE)
    }

    /// A client of generic netlink (NETLINK_GENERIC) with the same request machinery.
    public static func generic() throws -> RTNetlink {
        try RTNetlink(subscribeToLinks: false, netlinkProtocol: NETLINK_GENERIC)
    }

    private init(subscribeToLinks: Bool, netlinkProtocol: Int32) throws {
        self.netlinkProtocol = netlinkProtocol
        requestSocket = try RTNetlinkSocket(groups: 0, replyTimeoutSeconds: RTNetlink.replyTimeoutSeconds, netlinkProtocol: netlinkProtocol)
        eventSocket = subscribeToLinks ? try RTNetlinkSocket(groups: RTNetlinkSocket.groupLink, replyTimeoutSeconds: nil) : nil
        // Like iproute2: start from the clock so replies to an earlier process that had the
        // same port id are not mistaken for ours.
        lastSeq = UInt32(truncatingIfNeeded: time(nil))
    }

    /// The socket to `poll` for readability: the notification socket when subscribed,
    /// otherwise the request socket (-1 after a failed exchange until the next request).
    public var fileDescriptor: Int32 {
        eventSocket?.fd ?? requestSocket?.fd ?? -1
    }

    /// Every link in the namespace (RTM_GETLINK dump). Retried when the kernel reports the
    /// dump was interrupted by concurrent changes.
    public func links() throws -> [LinkInfo] {
        try dumpAll("dump links", { RTNetlinkCodec.getLinkRequest(seq: $0, ifindex: nil, name: nil, skipStats: true) },
                    RTNetlinkCodec.parseLink)
    }

    /// Every address in the namespace (RTM_GETADDR dump), retried like `links()`.
    public func addresses() throws -> [InterfaceAddress] {
        try dumpAll("dump addresses", RTNetlinkCodec.getAddressesRequest, RTNetlinkCodec.parseAddress)
    }

    /// Every route of every table and family (RTM_GETROUTE dump).
    public func routes() throws -> [InterfaceRoute] {
        try dumpAll("dump routes", RTNetlinkCodec.getRoutesRequest, RTNetlinkCodec.parseRoute)
    }

    /// Routes a user or daemon configured through one link (B24: a joined VF should
    /// have none; traffic routed by them bypasses the pair).
    public func ownRoutes(of ifindex: Int32) throws -> [InterfaceRoute] {
        try routes().filter { $0.oif == ifindex && $0.isConfigured }
    }

    /// A dump request and its parsed answers, retried when the kernel reports the
    /// dump was interrupted by concurrent changes.
    private func dumpAll<T>(_ what: String, _ request: (UInt32) -> [UInt8],
                            _ parse: (NetlinkMessage) throws -> T?) throws -> [T] {
        for _ in 0..<RTNetlink.dumpAttempts {
            let (messages, interrupted) = try exchange(what, expectAck: false, build: request)
            if interrupted { continue }
            do {
                return try messages.compactMap { try parse($0) }
            } catch let error as HnxdpError {
                throw HnxdpError(error.kind, "\(what): \(error.message)")
            }
        }
        throw HnxdpError.system("\(what) (interrupted \(RTNetlink.dumpAttempts) times by concurrent changes)", errno: EAGAIN)
    }

    /// The addresses of one link other than link-local ones: what a joined VF
    /// should not have (B24; traffic routed by them bypasses the pair).
    public func ownAddresses(of ifindex: Int32) throws -> [InterfaceAddress] {
        try addresses().filter { $0.ifindex == ifindex && !$0.isLinkLocal }
    }

    /// The link with this ifindex; nil when there is none (ENODEV).
    public func link(index: Int32) throws -> LinkInfo? {
        guard index > 0 else { return nil }
        return try getLink("get link ifindex \(index)", ifindex: index, name: nil)
    }

    /// The link with this name (or alternative name); nil when there is none (ENODEV).
    /// Throws `.badInput` for a name the kernel could never accept (empty, longer than 15 bytes).
    public func link(named name: String) throws -> LinkInfo? {
        guard InterfaceName.isValid(name) else {
            throw HnxdpError(.badInput, "invalid interface name \"\(name)\" (1 to \(InterfaceName.maxLength) bytes, no '/', ':' or whitespace)")
        }
        return try getLink("get link \(name)", ifindex: nil, name: name)
    }

    /// Applies `change` to the link (RTM_NEWLINK with NLM_F_ACK) and waits for the kernel's ack.
    /// `name` is only used in error messages ("set mtu 9000 on vf0 (ifindex 5): EINVAL ...").
    /// An empty change sends nothing.
    public func setLink(index: Int32, name: String, _ change: LinkChange) throws {
        guard !change.isEmpty else { return }
        let what = "set \(change) on \(RTNetlink.describe(name: name, index: index))"
        _ = try exchange(what, expectAck: true) { seq in
            RTNetlinkCodec.setLinkRequest(seq: seq, ifindex: index, change: change)
        }
    }

    /// Blocks until one datagram of link notifications arrives and returns its events
    /// (possibly none, when the datagram held nothing about links).
    ///
    /// Throws `HnxdpError` with errno ENOBUFS when the kernel dropped notifications because
    /// the socket's buffer was full: the caller's view is stale, resynchronise with `links()`
    /// (the socket stays usable). Requires `init(subscribeToLinks: true)`.
    public func readEvents() throws -> [LinkEvent] {
        guard let socket = eventSocket else {
            throw HnxdpError(.runtime, "read link notifications: RTNetlink was created without subscribeToLinks")
        }
        let what = "read link notifications"
        let datagram = try socket.receive(what)
        var events: [LinkEvent] = []
        for message in try parseMessages(datagram, what) {
            guard let link = try parseLink(message, what) else { continue }
            events.append(message.type == RTM_DELLINK ? .delLink(link) : .newLink(link))
        }
        return events
    }

    // MARK: - Exchanges

    /// The packets the device counted as transmitted (IFLA_STATS64 tx_packets); nil
    /// when the device is gone or reports none.
    public func transmittedPackets(index: Int32) throws -> UInt64? {
        do {
            let (messages, _) = try exchange("read counters of ifindex \(index)", expectAck: false) { seq in
                RTNetlinkCodec.getLinkRequest(seq: seq, ifindex: index, name: nil)
            }
            return try messages.lazy.compactMap { try RTNetlinkCodec.parseTxPackets($0) }.first
        } catch let error as HnxdpError where error.errno == ENODEV {
            return nil
        }
    }

    private func getLink(_ what: String, ifindex: Int32?, name: String?) throws -> LinkInfo? {
        do {
            let (messages, _) = try exchange(what, expectAck: false) { seq in
                RTNetlinkCodec.getLinkRequest(seq: seq, ifindex: ifindex, name: name, skipStats: true)
            }
            for message in messages {
                if let link = try parseLink(message, what) { return link }
            }
            return nil
        } catch let error as HnxdpError where error.errno == ENODEV {
            return nil
        }
    }

    private func nextSeq() -> UInt32 {
        lastSeq &+= 1
        if lastSeq == 0 { lastSeq = 1 } // 0 is what notifications carry
        return lastSeq
    }

    /// Sends one request and collects the kernel's answer to it.
    ///
    /// Returns the data messages (NLMSG_NOOP/DONE/ERROR removed) and whether any carried
    /// NLM_F_DUMP_INTR. The answer is complete at NLMSG_DONE, at NLMSG_ERROR (an ack when
    /// its code is 0, else thrown), or, for a plain request without `expectAck`, at the
    /// first data message without NLM_F_MULTI. Messages with another sequence number are
    /// leftovers of an earlier exchange and are skipped.
    func exchange(_ what: String, expectAck: Bool, build: (UInt32) -> [UInt8]) throws -> (messages: [NetlinkMessage], interrupted: Bool) {
        let socket: RTNetlinkSocket
        if let existing = requestSocket {
            socket = existing
        } else {
            socket = try RTNetlinkSocket(groups: 0, replyTimeoutSeconds: RTNetlink.replyTimeoutSeconds, netlinkProtocol: netlinkProtocol)
            requestSocket = socket
        }
        let seq = nextSeq()
        var complete = false
        defer {
            // An exchange abandoned half-way (a failed read, a malformed reply) may leave a
            // dump running on the socket, which would make the next dump fail with EBUSY:
            // start over with a fresh socket instead.
            if !complete { requestSocket = nil }
        }
        let request = build(seq)
        // A dump ends at NLMSG_DONE only: some families (generic netlink's netdev)
        // send its messages without NLM_F_MULTI.
        let isDump = request.count >= 8 && RTNetlinkCodec.readU16(request, 6) & UInt16(NLM_F_DUMP) == NLM_F_DUMP
        try socket.send(request, what)

        var collected: [NetlinkMessage] = []
        var interrupted = false
        while true {
            let datagram = try socket.receive(what)
            for message in try parseMessages(datagram, what) {
                guard message.seq == seq, message.pid == socket.portID else { continue }
                if message.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                switch Int32(message.type) {
                case NLMSG_NOOP:
                    continue
                case NLMSG_ERROR:
                    complete = true
                    let code = RTNetlinkCodec.parseError(message) ?? EPROTO
                    if code == 0 { return (collected, interrupted) }
                    throw RTNetlink.replyError(what, code, RTNetlinkCodec.parseExtendedAckMessage(message))
                case NLMSG_DONE:
                    complete = true
                    let code = RTNetlinkCodec.parseDone(message) ?? 0
                    if code != 0 { throw RTNetlink.replyError(what, code, nil) }
                    return (collected, interrupted)
                case NLMSG_OVERRUN:
                    throw HnxdpError.system(what, errno: ENOBUFS)
                default:
                    collected.append(message)
                    if !expectAck && !isDump && message.flags & UInt16(NLM_F_MULTI) == 0 {
                        complete = true
                        return (collected, interrupted)
                    }
                }
            }
        }
    }

    private func parseMessages(_ datagram: [UInt8], _ what: String) throws -> [NetlinkMessage] {
        do {
            return try RTNetlinkCodec.parseMessages(datagram)
        } catch let error as HnxdpError {
            throw HnxdpError(error.kind, "\(what): \(error.message)")
        }
    }

    private func parseLink(_ message: NetlinkMessage, _ what: String) throws -> LinkInfo? {
        do {
            return try RTNetlinkCodec.parseLink(message)
        } catch let error as HnxdpError {
            throw HnxdpError(error.kind, "\(what): \(error.message)")
        }
    }

    /// An NLMSG_ERROR from the kernel: "`what`: EINVAL (Invalid argument): <extended ack>".
    static func replyError(_ what: String, _ code: Int32, _ extAck: String?) -> HnxdpError {
        var error = HnxdpError.system(what, errno: code)
        if let extAck { error.message += ": \(extAck)" }
        return error
    }

    /// "vf0 (ifindex 5)", or "ifindex 5" without a name.
    static func describe(name: String, index: Int32) -> String {
        name.isEmpty ? "ifindex \(index)" : "\(name) (ifindex \(index))"
    }
}

// MARK: - Socket seam

/// A netlink address: the kernel (port 0), joined to `groups` when binding.
private func netlinkAddress(groups: UInt32 = 0) -> sockaddr_nl {
    sockaddr_nl(nl_family: UInt16(AF_NETLINK), nl_pad: 0, nl_pid: 0, nl_groups: groups)
}

/// One bound NETLINK_ROUTE socket. Closed on deinit.
final class RTNetlinkSocket {
    static let groupLink = UInt32(RTMGRP_LINK)
    private static let eventBufferBytes: Int32 = 4 << 20

    let fd: Int32
    /// The port id the kernel gave the socket (nlmsg_pid of replies to it).
    let portID: UInt32
    /// SO_RCVTIMEO is set: EAGAIN from a receive means the kernel did not answer in time.
    private let hasReplyTimeout: Bool
    private var buffer = [UInt8](repeating: 0, count: 32 * 1024)

    /// The one place netlink system calls are made: retries EINTR, turns -1 into
    /// `HnxdpError.system(what, errno:)`.
    @discardableResult
    static func retrying(_ what: @autoclosure () -> String, _ call: () -> Int) throws -> Int {
        while true {
            let result = call()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR { continue }
            throw HnxdpError.system(what(), errno: code)
        }
    }

    init(groups: UInt32, replyTimeoutSeconds: Int?, netlinkProtocol: Int32 = NETLINK_ROUTE) throws {
        let what = netlinkProtocol == NETLINK_ROUTE ? "open rtnetlink socket" : "open netlink socket (protocol \(netlinkProtocol))"
        let fd = Int32(try RTNetlinkSocket.retrying(what) {
            Int(socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), netlinkProtocol))
        })
        do {
            var one: Int32 = 1
            // Best effort: error replies carry the kernel's message and not our whole request.
            _ = setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
            _ = setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, socklen_t(MemoryLayout<Int32>.size))
            if groups != 0 {
                // Room for bursts of notifications; SO_RCVBUFFORCE needs CAP_NET_ADMIN.
                var size = RTNetlinkSocket.eventBufferBytes
                if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                    _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
                }
            }
            if let seconds = replyTimeoutSeconds {
                var tv = timeval(tv_sec: seconds, tv_usec: 0)
                try RTNetlinkSocket.retrying("\(what): set receive timeout") {
                    Int(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size)))
                }
            }
            var local = netlinkAddress(groups: groups)
            try RTNetlinkSocket.retrying(groups != 0 ? "\(what): join link notifications" : "\(what): bind") {
                withUnsafePointer(to: &local) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        Int(bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)))
                    }
                }
            }
            var bound = netlinkAddress()
            var length = socklen_t(MemoryLayout<sockaddr_nl>.size)
            try RTNetlinkSocket.retrying("\(what): getsockname") {
                withUnsafeMutablePointer(to: &bound) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        Int(getsockname(fd, $0, &length))
                    }
                }
            }
            self.fd = fd
            self.portID = bound.nl_pid
            self.hasReplyTimeout = replyTimeoutSeconds != nil
        } catch {
            close(fd)
            throw error
        }
    }

    deinit {
        close(fd)
    }

    /// Sends one request to the kernel (port 0).
    func send(_ bytes: [UInt8], _ what: String) throws {
        var kernel = netlinkAddress()
        let sent = try RTNetlinkSocket.retrying(what) {
            bytes.withUnsafeBytes { raw in
                withUnsafePointer(to: &kernel) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                    }
                }
            }
        }
        if sent != bytes.count {
            throw HnxdpError.system("\(what) (sent \(sent) of \(bytes.count) bytes)", errno: EMSGSIZE)
        }
    }

    /// Receives one whole datagram from the kernel, growing the buffer when the datagram is
    /// larger than it. Datagrams not sent by the kernel (nl_pid != 0) are dropped.
    /// A receive timeout on a request socket is reported as ETIMEDOUT.
    func receive(_ what: String) throws -> [UInt8] {
        while true {
            do {
                // MSG_PEEK|MSG_TRUNC returns the datagram's real length without consuming it.
                let size = try RTNetlinkSocket.retrying(what) {
                    buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK | MSG_TRUNC)) }
                }
                if size > buffer.count {
                    buffer = [UInt8](repeating: 0, count: RTNetlinkSocket.roundUp(size))
                }
                var source = netlinkAddress()
                var sourceLength = socklen_t(MemoryLayout<sockaddr_nl>.size)
                let received = try RTNetlinkSocket.retrying(what) {
                    buffer.withUnsafeMutableBytes { raw in
                        withUnsafeMutablePointer(to: &source) {
                            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                                recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &sourceLength)
                            }
                        }
                    }
                }
                if source.nl_pid != 0 { continue } // not from the kernel
                return Array(buffer[0..<min(received, buffer.count)])
            } catch let error as HnxdpError where error.errno == EAGAIN && hasReplyTimeout {
                throw HnxdpError.system("\(what) (no answer from the kernel)", errno: ETIMEDOUT)
            }
        }
    }

    private static func roundUp(_ n: Int) -> Int {
        (n + 4095) & ~4095
    }
}

extension RTNetlink {
    /// The link named `name`, or a bad-input error naming the option it came from
    /// ("interface vf9 not found in this network namespace (--vf)").
    public func requireLink(named name: String, option: String) throws -> LinkInfo {
        guard let link = try link(named: name) else {
            throw HnxdpError(.badInput, "interface \(name) not found in this network namespace (\(option))")
        }
        return link
    }
}
