import CHnxdpShim
import CLibBPF
import Glibc

/// The XDP program of a user's BPF object file (`hnxdp xdp attach OBJ.o`),
/// loaded into the kernel but attached nowhere yet. Loading it is the first
/// step of `XDPAttachment.attachUser`, so every problem with the file is
/// found before anything of the pair changes.
struct UserXDPProgram {
    let program: BPFDescriptor
    let name: String

    /// EM_BPF, e_machine of BPF ELF objects.
    private static let machineBPF: UInt16 = 247

    /// Loads the XDP program `programName` (or the first XDP program) of the
    /// object file at `path`. Every problem with the file is `.badInput`, with
    /// one line saying what is wrong.
    init(path: String, programName: String?, verbose: Bool) throws {
        try UserXDPProgram.checkObjectFile(path)
        hnxdp_libbpf_capture(verbose ? 1 : 0)
        guard let object = bpf_object__open_file(path, nil) else {
            throw UserXDPProgram.libbpfError("open BPF object \(path)", errno: errno)
        }
        defer { bpf_object__close(object) }

        var programs: [OpaquePointer] = []
        var next = bpf_object__next_program(object, nil)
        while let p = next {
            programs.append(p)
            next = bpf_object__next_program(object, p)
        }
        let chosen: OpaquePointer
        if let programName, !programName.isEmpty {
            guard let p = programs.first(where: { String(cString: bpf_program__name($0)) == programName }) else {
                throw HnxdpError(.badInput, "\(path) has no program named \(programName) (it has: \(UserXDPProgram.describe(programs)))")
            }
            guard bpf_program__type(p) == BPF_PROG_TYPE_XDP else {
                throw HnxdpError(.badInput, "program \(programName) in \(path) is a \(UserXDPProgram.typeName(p)) program, not an XDP program (SEC(\"xdp\"))")
            }
            chosen = p
        } else {
            guard let p = programs.first(where: { bpf_program__type($0) == BPF_PROG_TYPE_XDP }) else {
                throw HnxdpError(.badInput, "\(path) has no XDP program (SEC(\"xdp\")) (it has: \(UserXDPProgram.describe(programs)))")
            }
            chosen = p
        }
        for p in programs where p != chosen { _ = bpf_program__set_autoload(p, false) }
        // Tail calls need caller and callee to agree: plain XDP, no frags.
        _ = bpf_program__set_expected_attach_type(chosen, BPF_XDP)
        _ = bpf_program__set_flags(chosen, bpf_program__flags(chosen) & ~UInt32(BPF_F_XDP_HAS_FRAGS))
        let name = String(cString: bpf_program__name(chosen))
        let rc = bpf_object__load(object)
        if rc != 0 {
            throw UserXDPProgram.libbpfError("load \(name) from \(path) (refused by libbpf or the verifier; -v shows libbpf's log)",
                                             errno: rc < 0 ? -rc : EINVAL)
        }
        let fd = dup(bpf_program__fd(chosen))
        if fd < 0 { throw HnxdpError.system("dup fd of program \(name)", errno: errno) }
        self.program = BPFDescriptor(fd)
        self.name = name
    }

    /// Checks that `path` is a regular file starting with a BPF ELF header,
    /// so libbpf's own (less telling) errors are left for deeper problems.
    static func checkObjectFile(_ path: String) throws {
        var st = stat()
        if stat(path, &st) != 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR { throw HnxdpError(.badInput, "BPF object \(path) not found") }
            throw HnxdpError.system("stat \(path)", errno: e)
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw HnxdpError(.badInput, "\(path) is a directory, not a BPF object file")
        default: throw HnxdpError(.badInput, "\(path) is not a regular file, not a BPF object file")
        }
        if st.st_size == 0 { throw HnxdpError(.badInput, "\(path) is empty, not a BPF ELF object") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw HnxdpError.system("open \(path)", errno: errno) }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: 20) // e_ident (16), e_type (2), e_machine (2)
        let n = read(fd, &header, header.count)
        if n < 0 { throw HnxdpError.system("read \(path)", errno: errno) }
        guard n >= 4, header[0..<4] == [0x7F, 0x45, 0x4C, 0x46] else {
            throw HnxdpError(.badInput, "\(path) is not a BPF ELF object (no ELF header)")
        }
        guard n == header.count else { throw HnxdpError(.badInput, "\(path) is not a BPF ELF object (truncated ELF header)") }
        let machine = header[5] == 2 // EI_DATA: ELFDATA2MSB
            ? UInt16(header[18]) << 8 | UInt16(header[19])
            : UInt16(header[19]) << 8 | UInt16(header[18])
        guard machine == machineBPF else {
            throw HnxdpError(.badInput, "\(path) is an ELF object for another machine (e_machine \(machine)), not a BPF object")
        }
    }

    /// A failed libbpf call on the user's file: bad input, unless it was a privilege problem.
    private static func libbpfError(_ operation: String, errno code: Int32) -> HnxdpError {
        var e = HnxdpError.system(operation, errno: code)
        if e.kind == .runtime { e.kind = .badInput }
        let detail = String(cString: hnxdp_libbpf_last_message())
        if !detail.isEmpty { e.message += " [libbpf: \(detail)]" }
        return e
    }

    private static func typeName(_ program: OpaquePointer) -> String {
        libbpf_bpf_prog_type_str(bpf_program__type(program)).map { String(cString: $0) } ?? "non-XDP"
    }

    /// "name [type], ..." of the programs of an object, or "no programs".
    private static func describe(_ programs: [OpaquePointer]) -> String {
        if programs.isEmpty { return "no programs" }
        return programs.map { "\(String(cString: bpf_program__name($0))) [\(typeName($0))]" }.joined(separator: ", ")
    }
}
