@testable import RseqTraceMacroPlugin
import SwiftSyntax
import Testing

/// The syntactic classification of supported field types (unsupported ones are covered by the diagnostic tests).
@Suite("Field type classification")
struct FieldTypeTests {
    @Test(arguments: [
        ("UInt8", FieldKind.scalar), ("UInt16", .scalar), ("UInt32", .scalar), ("UInt64", .scalar), ("UInt", .scalar),
        ("Int8", .scalar), ("Int16", .scalar), ("Int32", .scalar), ("Int64", .scalar), ("Int", .scalar),
        ("Bool", .scalar), ("Float", .scalar), ("Double", .scalar), ("Swift.Int64", .scalar), ("(Int)", .scalar),
        ("String", .text), ("Substring", .text), ("StaticString", .text), ("TraceString<64>", .text),
        ("RseqTrace.TraceString<65535>", .text), ("TraceString<1>", .text),
        ("[UInt8]", .bytes), ("[Swift.UInt8]", .bytes), ("Array<UInt8>", .bytes), ("TraceBytes<16>", .bytes),
        ("RseqTrace.TraceBytes<255>", .bytes),
        ("Method", .presumedEnum), ("HTTP.Method", .presumedEnum), ("MyModule.Date", .presumedEnum),
    ])
    func supported(type: String, kind: FieldKind) {
        #expect(FieldTypes.check(TypeSyntax(stringLiteral: type)) == .supported(kind))
    }
}
