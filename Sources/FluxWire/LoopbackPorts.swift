#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Free TCP ports on 127.0.0.1, for tests and benchmarks that must name endpoints before binding them.
public enum LoopbackPorts {
    /// `count` distinct ports: all bound with port 0 at once (so they differ), then released. The kernel does not
    /// hand a just-released port out again at once, but another process may take it: use the ports right away.
    ///
    /// - Throws: `WireError.callFailed` naming the system call and its reason (out of file descriptors, no
    ///   loopback interface).
    public static func free(_ count: Int) throws(WireError) -> [Int] {
        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        func failed(_ call: String) -> WireError {
            let code = errno
            return .callFailed(call: call, target: "tcp://127.0.0.1:0", errno: code, reason: String(cString: strerror(code)))
        }
        var ports: [Int] = []
        for _ in 0..<count {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw failed("socket") }
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            guard bound == 0 else { throw failed("bind") }
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard named == 0 else { throw failed("getsockname") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
