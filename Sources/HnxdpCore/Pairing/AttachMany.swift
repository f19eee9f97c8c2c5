import Glibc

/// A pair named by the user: the synthetic interface and its VF.
public struct PairNames: Equatable, Sendable, CustomStringConvertible {
    public var synthetic: String
    public var vf: String

    public init(synthetic: String, vf: String) {
        self.synthetic = synthetic
        self.vf = vf
    }

    public var description: String { "\(synthetic) <- \(vf)" }

    /// The most a pairs list may hold: far more than any list of `HNXDP_MAX_PAIRS` pairs.
    static let maxListBytes = 1 << 20

    /// The pairs listed in the file at `path` ("-": standard input), as `parseList` reads
    /// them. A list that cannot be read (missing, a directory, too large) is bad input.
    public static func load(from path: String) throws -> [PairNames] {
        let source = path == "-" ? "standard input" : path
        let text: String
        do {
            text = path == "-" ? try HostEnvironment.readText(fd: STDIN_FILENO, what: source, limit: maxListBytes)
                               : try HostEnvironment.readText(path, limit: maxListBytes)
        } catch let error as HnxdpError {
            throw HnxdpError(.badInput, "cannot read the pairs list: \(error.message)")
        }
        return try parseList(text, source: source)
    }

    /// The pairs of a list (`attach --pairs FILE`): one pair per line, the synthetic
    /// then the VF, separated by blanks; empty lines and `#` comments are skipped.
    /// Refuses, naming the line: a line without exactly two names, a name no
    /// interface can have, a device named twice (as synthetic or VF), an empty list.
    /// `source` names the list in errors (a path, or "standard input").
    public static func parseList(_ text: String, source: String) throws -> [PairNames] {
        var pairs: [PairNames] = []
        var seen: [String: Int] = [:] // device name -> line it was first named on
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = i + 1
            let content = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count == 2 else {
                throw HnxdpError(.badInput, "\(source) line \(line): expected 'SYNTHETIC VF', got \(fields.count) field\(fields.count == 1 ? "" : "s")")
            }
            for name in fields {
                guard InterfaceName.isValid(name) else {
                    throw HnxdpError(.badInput, "\(source) line \(line): '\(name)' is not a valid interface name")
                }
                if let first = seen[name] {
                    throw HnxdpError(.badInput, "\(source) line \(line): \(name) is already named on line \(first)")
                }
                seen[name] = line
            }
            pairs.append(PairNames(synthetic: fields[0], vf: fields[1]))
        }
        if pairs.isEmpty { throw HnxdpError(.badInput, "\(source) names no pair") }
        return pairs
    }
}

extension PairLifecycle {
    /// Attaches several pairs in one invocation, in order, each exactly as
    /// `attach(synthetic:vf:force:)` does (a pair already attached is left as it
    /// is). All or nothing: when one fails, the pairs this call attached are
    /// detached again, in reverse order (their devices get their originals back),
    /// and the error names the pair that failed. The caller holds the invocation lock.
    public func attach(pairs: [PairNames], force: Bool) throws -> [JoinResult] {
        var results: [JoinResult] = []
        for (n, pair) in pairs.enumerated() {
            do {
                results.append(try attach(synthetic: pair.synthetic, vf: pair.vf, force: force))
            } catch {
                let made = results.filter { !$0.alreadyAttached }
                let undone = undoAttached(made)
                let kind = (error as? HnxdpError)?.kind ?? .runtime
                let message = (error as? HnxdpError)?.message ?? "\(error)"
                var text = "pair \(n + 1) of \(pairs.count) (\(pair)): \(message)"
                let pairs = made.count == 1 ? "1 pair" : "\(made.count) pairs"
                if !made.isEmpty {
                    text += undone == made.count
                        ? "; the \(pairs) attached before it \(made.count == 1 ? "was" : "were") detached again"
                        : "; of the \(pairs) attached before it, \(made.count - undone) could not be detached again (see the log and `hnxdp status`)"
                }
                throw HnxdpError(kind, text)
            }
        }
        return results
    }

    /// Detaches the pairs an interrupted `attach(pairs:)` made, last first; the
    /// namespace's pins go with the last pair. Returns how many were detached.
    private func undoAttached(_ made: [JoinResult]) -> Int {
        let detach = PairDetach(layout: layout, logger: logger)
        var undone = 0
        for result in made.reversed() {
            do {
                try detach.detach(synthetic: result.synthetic.ifindex)
                undone += 1
            } catch {
                logger.error("pair \(result.synthetic.name) <- \(result.vf.name): not detached again: \(error)")
            }
        }
        return undone
    }
}
