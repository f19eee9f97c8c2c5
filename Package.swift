// swift-tools-version:6.0
// hnxdp: a transparent-VF datapath for Linux (eBPF datapath, Swift control plane).
import PackageDescription

let package = Package(
    name: "hnxdp",
    products: [
        .executable(name: "hnxdp", targets: ["hnxdp"]),
        .library(name: "HnxdpCore", targets: ["HnxdpCore"]),
    ],
    // Exact versions: every machine (developers', CI's, the fleet's build host)
    // builds the same code; raise them on purpose, in one commit.
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        // Metrics of `run` (docs/metrics.md): swift-prometheus's registry and text
        // exposition. swift-metrics and swift-atomics are its own dependencies,
        // pinned here so they cannot move under us either.
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/apple/swift-atomics", exact: "1.3.0"),
    ],
    targets: [
        // libbpf and libxdp from Debian's libbpf-dev / libxdp-dev.
        .systemLibrary(
            name: "CLibBPF",
            pkgConfig: "libbpf",
            providers: [.apt(["libbpf-dev", "libxdp-dev", "libelf-dev", "zlib1g-dev"])]
        ),
        // Thin C shim: the BPF<->Swift contract header, tcx attach types,
        // ethtool/ifreq ioctls Swift cannot express directly.
        .target(
            name: "CHnxdpShim",
            dependencies: ["CLibBPF"],
            linkerSettings: [.linkedLibrary("bpf"), .linkedLibrary("xdp"), .linkedLibrary("elf"), .linkedLibrary("z")]
        ),
        // Build tool: compiles bpf/*.bpf.c with clang and embeds the objects as Swift data.
        .executableTarget(name: "hnxdp-bpf-embed", path: "Sources/hnxdp-bpf-embed"),
        .plugin(
            name: "EmbedBPFObjects",
            capability: .buildTool(),
            dependencies: ["hnxdp-bpf-embed"]
        ),
        // All behaviour lives here.
        .target(
            name: "HnxdpCore",
            dependencies: [
                "CLibBPF", "CHnxdpShim",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                // Linked anyway through swift-prometheus; named so their exact pins above are used.
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            plugins: ["EmbedBPFObjects"]
        ),
        // Thin CLI.
        .executableTarget(
            name: "hnxdp",
            dependencies: [
                "HnxdpCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Unprivileged unit tests: codecs, feature intersection, JSON.
        .testTarget(name: "HnxdpCoreTests", dependencies: ["HnxdpCore"]),
        // Privileged tests: load the real datapath and run it with BPF_PROG_TEST_RUN.
        .testTarget(name: "HnxdpDatapathTests", dependencies: ["HnxdpCore", "CLibBPF", "CHnxdpShim"]),
    ],
    swiftLanguageModes: [.v5]
)
