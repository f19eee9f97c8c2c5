import Foundation
import PackagePlugin

/// Compiles every `bpf/*.bpf.c` with clang (target bpf) and embeds the
/// resulting objects in the target as generated Swift, so the built `hnxdp`
/// carries its datapath wherever it is copied to.
@main
struct EmbedBPFObjects: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let bpfDir = context.package.directoryURL.appendingPathComponent("bpf")
        let entries = try FileManager.default.contentsOfDirectory(atPath: bpfDir.path).sorted()
        let sources = entries.filter { $0.hasSuffix(".bpf.c") }.map { bpfDir.appendingPathComponent($0) }
        let headers = entries.filter { $0.hasSuffix(".h") }.map { bpfDir.appendingPathComponent($0) }
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("EmbeddedBPFObjects.swift")
        let clang = try context.tool(named: "clang").url
        let embed = try context.tool(named: "hnxdp-bpf-embed").url
        return [
            .buildCommand(
                displayName: "Compiling BPF datapath (\(sources.map(\.lastPathComponent).joined(separator: ", ")))",
                executable: embed,
                arguments: [clang.path, output.path, bpfDir.path] + sources.map(\.path),
                inputFiles: sources + headers,
                outputFiles: [output]
            )
        ]
    }
}
