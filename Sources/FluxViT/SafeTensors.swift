import Foundation
import FluxTensor

/// The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte
/// little-endian header length, a JSON header of `name: {dtype, shape, data_offsets}` plus an
/// optional `__metadata__` string map, then the raw little-endian data.
///
/// Reads F32, F16 and BF16 (converted to F32) and I64/I32 (as integers); writes F32 and I64.
public enum SafeTensors {
    /// One stored tensor.
    public enum Value: Equatable, Sendable {
        case float(Tensor)
        case int(shape: [Int], values: [Int])

        /// The shape, whatever the element type.
        public var shape: [Int] {
            switch self {
            case let .float(t): t.shape
            case let .int(shape, _): shape
            }
        }
    }

    /// A whole file in memory.
    public struct File: Sendable {
        public var tensors: [String: Value]
        public var metadata: [String: String]

        public init(tensors: [String: Value] = [:], metadata: [String: String] = [:]) {
            self.tensors = tensors
            self.metadata = metadata
        }

        /// The float tensor `name`, or a typed error naming the file and the key.
        public func float(_ name: String, in path: String) throws(WeightsError) -> Tensor {
            switch tensors[name] {
            case let .float(t)?: return t
            case .int?: throw .badFormat(path: path, reason: "tensor '\(name)' holds integers, expected floats")
            case nil:
                throw .missingKey(path: path, key: name, available: tensors.keys.sorted())
            }
        }

        /// The integer tensor `name`.
        public func ints(_ name: String, in path: String) throws(WeightsError) -> (shape: [Int], values: [Int]) {
            switch tensors[name] {
            case let .int(shape, values)?: return (shape, values)
            case .float?: throw .badFormat(path: path, reason: "tensor '\(name)' holds floats, expected integers")
            case nil: throw .missingKey(path: path, key: name, available: tensors.keys.sorted())
            }
        }
    }

    /// Reads a safetensors file.
    public static func read(path: String) throws(WeightsError) -> File {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        return try decode(data, path: path)
    }

    /// Decodes the bytes of a safetensors file; `path` only names it in errors.
    public static func decode(_ data: Data, path: String) throws(WeightsError) -> File {
        guard data.count >= 8 else {
            throw .badFormat(path: path, reason: "file is \(data.count) bytes, shorter than the 8-byte header length")
        }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8), headerLength < 100_000_000 else {
            throw .badFormat(path: path, reason: "header length \(headerLength) exceeds the file (\(data.count) bytes): truncated or not safetensors")
        }
        let dataStart = 8 + Int(headerLength)
        let headerData = data.subdata(in: 8..<dataStart)
        guard let json = try? JSONSerialization.jsonObject(with: headerData), let header = json as? [String: Any] else {
            throw .badFormat(path: path, reason: "header is not a JSON object")
        }
        var file = File()
        if let meta = header["__metadata__"] as? [String: Any] {
            for (k, v) in meta { file.metadata[k] = v as? String ?? "\(v)" }
        }
        let payloadCount = data.count - dataStart
        for (name, entry) in header where name != "__metadata__" {
            guard let info = entry as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = (info["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offsets = (info["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  offsets.count == 2, shape.allSatisfy({ $0 >= 0 })
            else {
                throw .badFormat(path: path, reason: "entry '\(name)' lacks dtype, shape or data_offsets")
            }
            let count = shape.reduce(1, *)
            let width: Int
            switch dtype {
            case "F32", "I32": width = 4
            case "F16", "BF16": width = 2
            case "I64": width = 8
            default:
                throw .badFormat(path: path, reason: "tensor '\(name)' has dtype \(dtype); supported: F32, F16, BF16, I64, I32")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= payloadCount else {
                throw .badFormat(path: path, reason: "tensor '\(name)' lies at bytes \(begin)..<\(end) but the data is \(payloadCount) bytes: file truncated?")
            }
            guard end - begin == count * width else {
                throw .badFormat(path: path, reason: "tensor '\(name)' has \(end - begin) bytes for shape \(shape) of \(dtype)")
            }
            file.tensors[name] = data.withUnsafeBytes { raw -> Value in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[(dataStart + begin)..<(dataStart + end)])
                switch dtype {
                case "F32":
                    var out = [Float](repeating: 0, count: count)
                    out.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
                    return .float(Tensor(shape: shape, scalars: out))
                case "F16":
                    return .float(Tensor(shape: shape, scalars: (0..<count).map {
                        Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))))
                    }))
                case "BF16":
                    return .float(Tensor(shape: shape, scalars: (0..<count).map {
                        Float(bitPattern: UInt32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16)
                    }))
                case "I64":
                    return .int(shape: shape, values: (0..<count).map {
                        Int(Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)))
                    })
                default:
                    return .int(shape: shape, values: (0..<count).map {
                        Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)))
                    })
                }
            }
        }
        return file
    }

    /// Encodes tensors (sorted by name) and metadata into safetensors bytes.
    public static func encode(_ file: File) -> Data {
        var header: [String: Any] = [:]
        if !file.metadata.isEmpty { header["__metadata__"] = file.metadata }
        var payload = Data()
        for name in file.tensors.keys.sorted() {
            let begin = payload.count
            switch file.tensors[name]! {
            case let .float(t):
                t.scalars.withUnsafeBytes { payload.append(contentsOf: $0) }
                header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [begin, payload.count]]
            case let .int(shape, values):
                values.map { Int64($0).littleEndian }.withUnsafeBytes { payload.append(contentsOf: $0) }
                header[name] = ["dtype": "I64", "shape": shape, "data_offsets": [begin, payload.count]]
            }
        }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(payload)
        return out
    }

    /// Writes a file atomically (temporary file, then rename).
    public static func write(_ file: File, to path: String) throws(WeightsError) {
        do {
            try encode(file).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .unwritable(path: path, reason: (error as NSError).localizedDescription)
        }
    }
}
