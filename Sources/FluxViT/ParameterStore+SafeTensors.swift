import FluxTensor

extension ParameterStore {
    /// Loads every parameter from a safetensors file with spec §3 names. A `module.` or `model.`
    /// prefix on every name is tolerated. All missing, unexpected and mis-shaped tensors are
    /// reported in one `WeightsError.mismatch`; nothing is changed unless the whole file fits.
    public func load(path: String) throws(WeightsError) {
        let file = try SafeTensors.read(path: path)
        try load(file, path: path)
    }

    /// Loads from a decoded file; `path` names it in errors.
    public func load(_ file: SafeTensors.File, path: String) throws(WeightsError) {
        let tensors = Self.strippingPrefix(file.tensors)
        let issues = issues(with: tensors)
        guard issues.isEmpty else { throw .mismatch(path: path, issues) }
        for slot in slots {
            guard case let .float(tensor)? = tensors[slot.name] else { continue }
            tensor.scalars.withUnsafeBufferPointer { (values + slot.offset).update(from: $0.baseAddress!, count: slot.count) }
        }
    }

    /// Every missing, unexpected and mis-shaped tensor of `tensors` against this layout.
    public func issues(with tensors: [String: SafeTensors.Value]) -> [WeightIssue] {
        let tensors = Self.strippingPrefix(tensors)
        var issues: [WeightIssue] = []
        for slot in slots {
            switch tensors[slot.name] {
            case nil: issues.append(.missing(name: slot.name, shape: slot.shape))
            case let .float(t)? where t.shape != slot.shape:
                issues.append(.misshaped(name: slot.name, expected: slot.shape, found: t.shape))
            case let .int(shape, _)?: issues.append(.misshaped(name: slot.name, expected: slot.shape, found: shape))
            default: break
            }
        }
        for name in tensors.keys.sorted() where slot(name) == nil {
            issues.append(.unexpected(name: name, shape: tensors[name]!.shape))
        }
        return issues
    }

    /// Drops a `module.` or `model.` prefix that every name carries (PyTorch wrappers).
    static func strippingPrefix(_ tensors: [String: SafeTensors.Value]) -> [String: SafeTensors.Value] {
        for prefix in ["module.", "model."] where !tensors.isEmpty && tensors.keys.allSatisfy({ $0.hasPrefix(prefix) }) {
            return Dictionary(uniqueKeysWithValues: tensors.map { (String($0.dropFirst(prefix.count)), $1) })
        }
        return tensors
    }

    /// Every parameter as a safetensors file (spec §3 names), with `metadata`.
    public func file(metadata: [String: String] = [:]) -> SafeTensors.File {
        SafeTensors.File(
            tensors: Dictionary(uniqueKeysWithValues: slots.map { ($0.name, .float(tensor($0.name))) }),
            metadata: metadata)
    }

    /// Writes every parameter to `path` (atomically).
    public func save(path: String, metadata: [String: String] = [:]) throws(WeightsError) {
        try SafeTensors.write(file(metadata: metadata), to: path)
    }
}
