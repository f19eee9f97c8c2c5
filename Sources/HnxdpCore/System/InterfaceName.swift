/// The one check of an interface name given by a user (command line, `--config`)
/// or looked up: the kernel's rules (dev_valid_name): 1 to 15 bytes (IFNAMSIZ - 1),
/// not "." or "..", no '/', ':', whitespace or NUL.
public enum InterfaceName {
    /// The longest name the kernel accepts, in bytes.
    public static let maxLength = 15

    /// Whether the kernel could have a device of this name.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count <= maxLength && name != "." && name != ".."
            && !bytes.contains(0) && !name.contains("/") && !name.contains(":") && !name.contains(where: { $0.isWhitespace })
    }
}
