/// The one place hnxdp's version lives: `hnxdp --version` prints it, and
/// `dump --json` / `status --json` carry it with the JSON schema's version.
public enum HnxdpVersion {
    /// The binary's version (semantic versioning).
    public static let string = "0.2.0"
    /// Version of the `dump --json` / `status --json` object. Raised only when a
    /// field is removed or changes meaning; new fields keep it.
    public static let jsonSchema = 1
}
