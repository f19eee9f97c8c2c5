import Glibc

/// Settings of `hnxdp monitor`.
public struct MonitorOptions: Equatable, Sendable {
    /// Seconds between two reads of the counters.
    public var intervalSeconds: Double = 1
    /// Frames (terminal) or lines (JSON) to print before exiting; nil: until stopped.
    public var count: Int? = nil

    public init(intervalSeconds: Double = 1, count: Int? = nil) {
        self.intervalSeconds = intervalSeconds
        self.count = count
    }
}

/// `hnxdp monitor`: a live view of every pair of the namespace. A reader only:
/// it reads the pins and the switch histories, never takes the namespace's
/// invocation lock and changes nothing, so it runs beside `attach`, `detach` and
/// `run` (or with no other hnxdp at all).
public final class Monitor {
    let layout: PinLayout
    let options: MonitorOptions
    let netlink: RTNetlink
    let histories: SwitchHistoryStore

    public init(layout: PinLayout, options: MonitorOptions) throws {
        self.layout = layout
        self.options = options
        self.netlink = try RTNetlink()
        self.histories = SwitchHistoryStore(layout: layout)
    }

    /// A read of the pins now; a failure is shown in the frame, and the next read tries again
    /// (pins half made or half removed by an `attach` or `detach` in progress).
    func sample() -> MonitorSample {
        do {
            return try MonitorSample.read(layout: layout, netlink: netlink, histories: histories)
        } catch {
            return MonitorSample(realtimeNs: realtimeNanoseconds(), pairs: [], error: "\(error)")
        }
    }

    var intervalNs: UInt64 { UInt64(options.intervalSeconds * 1e9) }

    enum Wake: Equatable { case tick, quit, redraw, clear, suspend }

    /// Sleeps in poll(2) until `deadline` (monotonic ns), a signal or a key.
    func wait(until deadline: UInt64, signals: SignalChannel, terminal: Terminal?) -> Wake {
        while true {
            let now = monotonicNanoseconds()
            if now >= deadline { return .tick }
            var fds = [pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)]
            if let terminal, terminal.readsKeys { fds.append(pollfd(fd: terminal.input, events: Int16(POLLIN), revents: 0)) }
            let timeoutMs = Int32(min((deadline - now + 999_999) / 1_000_000, UInt64(Int32.max)))
            let n = poll(&fds, nfds_t(fds.count), timeoutMs)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { continue } // the deadline is checked at the top
            while let s = signals.next() {
                switch s {
                case SIGWINCH: return .redraw
                case SIGTSTP: return .suspend
                default: return .quit // SIGINT (Ctrl-C), SIGTERM, SIGHUP (terminal gone), SIGQUIT
                }
            }
            if fds.count > 1 {
                if fds[1].revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { return .quit }
                if fds[1].revents & Int16(POLLIN) != 0, let terminal {
                    for key in terminal.readKeys() {
                        if key == UInt8(ascii: "q") || key == UInt8(ascii: "Q") { return .quit }
                        if key == 0x0C { return .clear } // Ctrl-L
                    }
                }
            }
        }
    }

    /// The next deadline after `deadline`: one interval on, or one interval from
    /// now when reads fell behind (a frame is never drawn twice to catch up).
    func advance(_ deadline: UInt64) -> UInt64 {
        let next = deadline + intervalNs
        let now = monotonicNanoseconds()
        return next > now ? next : now + intervalNs
    }

    /// One JSON object per interval on `emit` (docs/json.md). Each line has the
    /// rates since the line before (the first since a read one interval earlier).
    /// Returns on SIGINT/SIGTERM/SIGHUP or after `count` lines.
    public func runJSON(emit: (String) -> Void) throws {
        let signals = try SignalChannel([SIGINT, SIGTERM, SIGHUP])
        var previous = sample()
        var deadline = monotonicNanoseconds() + intervalNs
        var printed = 0
        while options.count.map({ printed < $0 }) ?? true {
            if wait(until: deadline, signals: signals, terminal: nil) == .quit { return }
            let current = sample()
            let rates = RateMeter.rates(from: previous, to: current)
            emit(try MonitorView.json(MonitorView.line(sample: current, previous: previous, rates: rates,
                                                       netnsInode: layout.netnsInode, intervalSeconds: options.intervalSeconds)))
            previous = current
            printed += 1
            deadline = advance(deadline)
        }
    }

    /// The live view on `terminal` until `q`, Ctrl-C, SIGTERM or SIGHUP, or
    /// `count` frames. The terminal is given back as it was on every way out.
    public func runTerminal(_ terminal: Terminal) throws {
        let signals = try SignalChannel([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGTSTP])
        try terminal.enter()
        defer { terminal.leave() }
        var previous: MonitorSample? = nil
        var current = sample()
        var rates: [Int32: PairRates] = [:]
        func draw() {
            terminal.draw(MonitorView.lines(sample: current, rates: rates, netnsInode: layout.netnsInode,
                                            intervalSeconds: options.intervalSeconds, interactive: terminal.readsKeys))
        }
        draw()
        var frames = 1
        var deadline = monotonicNanoseconds() + intervalNs
        while true {
            if let count = options.count, frames >= count { return }
            switch wait(until: deadline, signals: signals, terminal: terminal) {
            case .quit:
                return
            case .redraw:
                draw()
            case .clear:
                terminal.clear()
                draw()
            case .suspend:
                // Ctrl-Z: give the terminal back, stop, and take it again when continued.
                terminal.leave()
                kill(getpid(), SIGSTOP)
                try terminal.enter()
                draw()
            case .tick:
                previous = current
                current = sample()
                rates = RateMeter.rates(from: previous, to: current)
                draw()
                frames += 1
                deadline = advance(deadline)
            }
        }
    }
}
