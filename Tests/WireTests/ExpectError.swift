// The one check that a parse or emit fails with a given WireError code, shared by the Wire
// suites so each states only the bytes and the code it expects.
import Testing
import Wire

func expectError(
    _ code: WireError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    let error = #expect(throws: WireError.self, sourceLocation: sourceLocation) { try body() }
    #expect(error?.code == code, sourceLocation: sourceLocation)
}
