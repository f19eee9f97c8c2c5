import CHnxdpShim
import Glibc

/// The terminal `hnxdp monitor` draws on, with plain ANSI sequences (no
/// terminfo: works on any terminal emulator, over ssh, in tmux/screen).
///
/// `enter` switches to the alternate screen, hides the cursor and puts the
/// keyboard in cbreak mode (keys one by one, no echo; Ctrl-C still sends
/// SIGINT); `leave` undoes all of it and is safe to call more than once. The
/// caller calls `leave` on every way out (see `Monitor.runTerminal`).
public final class Terminal {
    /// How frames are drawn.
    public enum Mode: Equatable, Sendable {
        /// Alternate screen, each frame drawn over the last (cursor home, every
        /// line cleared to its end: no full clear, so no flicker), with colour.
        case screen(color: Bool)
        /// TERM=dumb: no control sequences at all; frames follow each other.
        case plain
    }

    public let mode: Mode
    let input: Int32
    let output: Int32
    private var saved: termios?
    private var entered = false

    /// The mode for `environment` (TERM, NO_COLOR): TERM=dumb gets plain frames;
    /// NO_COLOR (any value, https://no-color.org) or TERM=dumb: no colour.
    public static func mode(term: String?, noColor: String?) -> Mode {
        if term == "dumb" { return .plain }
        return .screen(color: noColor == nil)
    }

    public init(mode: Mode, input: Int32 = 0, output: Int32 = 1) {
        self.mode = mode
        self.input = input
        self.output = output
    }

    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// Whether keys can be read (standard input is a terminal).
    public var readsKeys: Bool { Terminal.isTerminal(input) }

    /// Rows and columns now (TIOCGWINSZ); 24 x 80 when the terminal does not say.
    public func size() -> (rows: Int, columns: Int) {
        var ws = winsize()
        if ioctl(output, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_row > 0, ws.ws_col > 0 {
            return (Int(ws.ws_row), Int(ws.ws_col))
        }
        return (24, 80)
    }

    public func enter() throws {
        if entered { return }
        if readsKeys {
            var t = termios()
            if tcgetattr(input, &t) != 0 { throw HnxdpError.system("read the terminal's mode (tcgetattr)", errno: errno) }
            saved = t
            t.c_lflag &= ~tcflag_t(ICANON | ECHO)
            withUnsafeMutableBytes(of: &t.c_cc) { cc in
                cc[Int(VMIN)] = 0
                cc[Int(VTIME)] = 0
            }
            if tcsetattr(input, TCSANOW, &t) != 0 { throw HnxdpError.system("set the terminal's mode (tcsetattr)", errno: errno) }
        }
        entered = true
        if case .screen = mode { write("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J") }
    }

    /// Back to the normal screen, cursor shown, keyboard mode as it was.
    public func leave() {
        if !entered { return }
        entered = false
        if case .screen = mode { write("\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l") }
        if var t = saved {
            _ = tcsetattr(input, TCSADRAIN, &t)
            saved = nil
        }
    }

    deinit { leave() }

    /// Draws one frame. On a screen: cursor home, each line followed by
    /// clear-to-end-of-line, then clear below the last line; lines are cut to the
    /// width and the frame to the height, so nothing wraps or scrolls.
    public func draw(_ lines: [FrameLine]) {
        switch mode {
        case .plain:
            let (_, columns) = size()
            write(lines.map { $0.render(width: columns, color: false) }.joined(separator: "\n") + "\n\n")
        case .screen(let color):
            let (rows, columns) = size()
            let shown = MonitorView.fit(lines, rows: rows)
            var frame = "\u{1B}[H"
            frame += shown.map { $0.render(width: columns, color: color) + "\u{1B}[K" }.joined(separator: "\r\n")
            frame += "\u{1B}[J"
            write(frame)
        }
    }

    /// Clears the whole screen (Ctrl-L, after a resume): the next frame redraws it.
    public func clear() {
        if case .screen = mode { write("\u{1B}[H\u{1B}[2J") }
    }

    /// Keys typed since the last call (non-blocking); empty when none.
    public func readKeys() -> [UInt8] {
        guard readsKeys else { return [] }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
        return n > 0 ? Array(buffer.prefix(n)) : []
    }

    func write(_ s: String) {
        var bytes = Array(s.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(output, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }
}

/// Signals delivered through a file descriptor, so a poll(2) loop sees them
/// between frames (no work in signal handlers). They stay blocked until the
/// process exits: unblocking them would let a second Ctrl-C that is still
/// pending (the terminal signals every process of the foreground group, and
/// wrappers such as timeout(1) forward theirs) kill the process on its way
/// out, after it had quit cleanly, which shells read as "interrupted".
public final class SignalChannel {
    public let fd: Int32

    public init(_ signals: [Int32]) throws {
        let fd = signals.withUnsafeBufferPointer { hnxdp_signalfd($0.baseAddress, UInt32($0.count)) }
        if fd < 0 { throw HnxdpError.system("set up signal handling", errno: -fd) }
        self.fd = fd
    }

    /// The next pending signal, nil when none.
    public func next() -> Int32? {
        let s = hnxdp_read_signal(fd)
        return s > 0 ? s : nil
    }

    deinit { close(fd) }
}
