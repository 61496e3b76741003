import Foundation

/// Median wall time of `runs` calls of `body` after `warmup` calls.
func medianSeconds(runs: Int, warmup: Int, _ body: () throws -> Void) rethrows -> (median: Double, all: [Double]) {
    for _ in 0..<warmup { try body() }
    var times: [Double] = []
    for _ in 0..<max(runs, 1) {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    let sorted = times.sorted()
    let mid = sorted.count / 2
    return (sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2, times)
}

/// Prints a JSON object with sorted keys on one line.
func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// Resident memory high-water mark of this process (VmHWM), in bytes; 0 where unknown.
func peakResidentBytes() -> Int { procStatus("VmHWM:") }

/// Resident memory of this process now (VmRSS), in bytes; 0 where unknown.
func residentBytes() -> Int { procStatus("VmRSS:") }

private func procStatus(_ key: String) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix(key) {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}
