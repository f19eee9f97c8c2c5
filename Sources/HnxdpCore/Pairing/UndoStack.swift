import Logging

/// Steps taken so far in a multi-step change, each with its undo. A join
/// either completes (`commit`) or every step taken is undone in reverse
/// order (`rollback`), so a failure leaves the system as it was.
final class UndoStack {
    private var steps: [(what: String, undo: () throws -> Void)] = []
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    /// Records a step that was just done and how to undo it.
    func push(_ what: String, _ undo: @escaping () throws -> Void) {
        steps.append((what, undo))
    }

    /// Undoes every recorded step, newest first; undo failures are logged, not thrown.
    func rollback() {
        while let step = steps.popLast() {
            do {
                try step.undo()
                logger.debug("rolled back: \(step.what)")
            } catch {
                logger.error("rollback of '\(step.what)' failed: \(error)")
            }
        }
    }

    /// Keeps everything; nothing will be undone.
    func commit() { steps.removeAll() }
}
