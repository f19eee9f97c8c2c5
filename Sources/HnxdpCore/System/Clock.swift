import Glibc

// hnxdp's clocks, one place: CLOCK_MONOTONIC for durations, deadlines and
// rates (the clock of bpf_ktime_get_ns and of systemd's MONOTONIC_USEC), and
// CLOCK_REALTIME for times shown to people and stored in the pair entry.

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNanoseconds() -> UInt64 { nanoseconds(CLOCK_MONOTONIC) }

/// CLOCK_MONOTONIC in milliseconds.
func monotonicMilliseconds() -> UInt64 { monotonicNanoseconds() / 1_000_000 }

/// CLOCK_REALTIME in nanoseconds.
func realtimeNanoseconds() -> UInt64 { nanoseconds(CLOCK_REALTIME) }

private func nanoseconds(_ clock: clockid_t) -> UInt64 {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
