import Foundation
import FluxTestKit
import Synchronization
@testable import FluxWire

/// Lines an `Authenticator` logged, collected for assertions.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    var sink: @Sendable (String) -> Void { { line in self.lines.withLock { $0.append(line) } } }
}


/// A fresh temporary folder.
func temporaryFolder(_ label: String) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("fluxwire-\(label)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
