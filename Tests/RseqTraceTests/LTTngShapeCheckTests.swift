import CRseqTraceLTTng
import Testing
@testable import RseqTrace

/// The LTTng-UST bridge's C provider checks every payload against the shapes Swift computed
/// (`PayloadFieldShape`) before LTTng-UST reads a byte of it. The check is compiled in every build,
/// so it is compared here with Swift's `PayloadFieldShape.matches` on the same inputs.
@Suite("LTTng provider: the C payload check agrees with PayloadFieldShape.matches")
struct LTTngShapeCheckTests {
    static let schemas: [[FieldType]] = [
        [.uint8, .uint32, .float64],
        [.string(maxBytes: 10)],
        [.uint64, .bytes(maxCount: 300), .string(maxBytes: 5), .bool],
        [.string(maxBytes: 1), .string(maxBytes: 1), .uint16],
        [.bytes(maxCount: 65_533)],
    ]

    /// xorshift64*: reproducible inputs without Foundation.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
        mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    }

    /// A payload built field by field: counts within the bound, at it, one above, or wild, then
    /// the bytes (sometimes fewer), then a length change of -3...+3 bytes.
    static func payload(_ shapes: [PayloadFieldShape], _ random: inout Generator) -> [UInt8] {
        var bytes: [UInt8] = []
        for shape in shapes {
            if shape.fixed >= 0 {
                for _ in 0..<shape.fixed { bytes.append(UInt8(truncatingIfNeeded: random.next())) }
                continue
            }
            let bound = Int(shape.bound)
            let count: Int
            switch random.below(8) {
            case 0: count = bound
            case 1: count = bound + 1
            case 2: count = random.below(65_536)
            default: count = random.below(min(bound, 400) + 1)
            }
            bytes += [UInt8(count & 0xFF), UInt8(count >> 8)]
            let present = random.below(10) == 0 ? random.below(count + 1) : count
            bytes += [UInt8](repeating: 0x61, count: min(present, 70_000))
        }
        let change = random.below(7) - 3
        if change < 0 { bytes.removeLast(min(-change, bytes.count)) }
        if change > 0 { bytes += [UInt8](repeating: 0, count: change) }
        return bytes
    }

    static func cMatches(_ shapes: [PayloadFieldShape], fixedSize: Int?, _ payload: [UInt8]) -> Bool {
        let cShapes = shapes.map {
            rseqtrace_lttng_field_shape(fixed: UInt32(max(0, $0.fixed)), bound: UInt32($0.bound))
        }
        // SAFETY: both buffers are live for the call, which reads only `count` shapes and
        // `payload.count` bytes.
        return unsafe cShapes.withUnsafeBufferPointer { shapeBuffer in
            unsafe payload.withUnsafeBytes { bytes in
                unsafe rseqtrace_lttng_payload_matches(shapeBuffer.baseAddress, UInt32(shapeBuffer.count),
                                                       fixedSize ?? -1, bytes.baseAddress, bytes.count) == 1
            }
        }
    }

    @Test("20,000 generated payloads per schema: same verdict in C and Swift, both verdicts seen",
          arguments: 0..<schemas.count)
    func agree(schemaIndex: Int) {
        let fields = Self.schemas[schemaIndex].enumerated().map { EventField("f\($0.offset)", $0.element) }
        let schema = EventSchema(name: "shape:check", fields: fields)
        let shapes = fields.map { PayloadFieldShape($0.type) }
        var random = Generator(state: 0x9E37_79B9_7F4A_7C15 &+ UInt64(schemaIndex))
        var accepted = 0
        var refused = 0
        for _ in 0..<20_000 {
            let payload = Self.payload(shapes, &random)
            let swift = schema.matches(payload)
            let c = Self.cMatches(shapes, fixedSize: schema.fixedPayloadSize, payload)
            #expect(swift == c, "schema \(schemaIndex), \(payload.count) bytes: Swift \(swift), C \(c)")
            if swift != c { return }
            if swift { accepted += 1 } else { refused += 1 }
        }
        #expect(accepted > 100 && refused > 100, "accepted \(accepted), refused \(refused)")
    }
}
