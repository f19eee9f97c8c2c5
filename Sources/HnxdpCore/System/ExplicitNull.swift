/// An optional that JSON spells `null` when it has no value, where Swift's
/// synthesized `Encodable` would leave the key out. The JSON documents
/// (docs/json.md) promise these keys in every object, so a consumer can tell
/// "no VF" from "an older hnxdp that did not know the field".
///
///     struct Pair: Encodable { @ExplicitNull var vf: Device? }   // {"vf":null}
@propertyWrapper
public struct ExplicitNull<Value: Encodable>: Encodable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let value = wrappedValue {
            try c.encode(value)
        } else {
            try c.encodeNil()
        }
    }
}

extension ExplicitNull: Equatable where Value: Equatable {}
extension ExplicitNull: Sendable where Value: Sendable {}
