extension SweepSpec {
    /// The spec as self-contained YAML: paths as stored (absolute when parsed with a base directory, as `load`
    /// does) and every key written except those left to the model's defaults (an empty `candidates` list, a nil
    /// `standard`), which stay absent so that they still follow the model. `parse(yaml:)` of this text, without a
    /// base directory, gives back an equal spec.
    public var canonicalYAML: String {
        var lines = ["kind: \(Self.kind)", "name: \(JobSpec.quoted(name))"]
        switch checkpoint {
        case let .path(path): lines.append("checkpoint: \(JobSpec.quoted(path))")
        case let .job(job): lines += ["checkpoint:", "  job: \(JobSpec.quoted(job))"]
        }
        lines += ["data:", "  eval: \(JobSpec.quoted(data.eval))"]
        if let chooseOn = data.chooseOn { lines.append("  choose_on: \(JobSpec.quoted(chooseOn))") }
        if let root = data.root { lines.append("  root: \(JobSpec.quoted(root))") }
        lines.append("budgets: \(Self.list(budgets))")
        if !candidates.frames.isEmpty || !candidates.sizes.isEmpty {
            lines.append("candidates:")
            if !candidates.frames.isEmpty { lines.append("  frames: \(Self.list(candidates.frames))") }
            if !candidates.sizes.isEmpty { lines.append("  sizes: \(Self.list(candidates.sizes))") }
        }
        lines += [
            "selection: \(selection.rawValue)",
            "views:",
            "  clips: \(views.clips)",
            "  crops: \(views.crops)",
        ]
        switch head {
        case .nearest: lines.append("head: nearest")
        case let .fixed(index): lines.append("head: \(index)")
        }
        if let standard {
            lines += ["standard:", "  frames: \(standard.frames)", "  size: \(standard.size)"]
        }
        lines += [
            "workers:",
            "  max: \(maxWorkers)",
            "priority: \(priority)",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    private static func list(_ values: [Int]) -> String {
        "[\(values.map(String.init).joined(separator: ", "))]"
    }
}
