extension JobSpec {
    /// The spec as self-contained YAML: every key written, the model inline as a mapping of its keys (so a
    /// worker needs no model file), and paths as stored (absolute when parsed with a base directory, as `load`
    /// does). `parse(yaml:)` of this text, without a base directory, gives back an equal spec.
    public var canonicalYAML: String {
        var lines = ["name: \(Self.quoted(name))", "model:"]
        lines += modelConfig.yaml.split(separator: "\n").map { "  \($0)" }
        lines.append("init:")
        switch initialWeights {
        case let .seed(seed): lines.append("  seed: \(seed)")
        case let .checkpoint(path): lines.append("  checkpoint: \(Self.quoted(path))")
        }
        lines.append("data:")
        switch data {
        case let .manifests(train, val, root):
            lines.append("  train: \(Self.quoted(train))")
            if let val { lines.append("  val: \(Self.quoted(val))") }
            if let root { lines.append("  root: \(Self.quoted(root))") }
        case let .synthetic(count):
            lines.append("  synthetic: \(count)")
        }
        let t = training
        lines.append("train:")
        lines.append("  global_batch: \(t.globalBatch)")
        switch t.length {
        case let .steps(steps): lines.append("  steps: \(steps)")
        case let .epochs(epochs): lines.append("  epochs: \(epochs)")
        }
        lines += [
            "  seed: \(t.seed)",
            "  lr: \(t.learningRate)",
            "  final_lr: \(t.finalLearningRate)",
            "  warmup: \(t.warmup)",
            "  weight_decay: \(t.weightDecay)",
            "  layer_decay: \(t.layerDecay)",
        ]
        if let clipGrad = t.clipGrad { lines.append("  clip_grad: \(clipGrad)") }
        lines += [
            "  label_smoothing: \(t.labelSmoothing)",
            "  frames: \(Self.list(t.frames))",
            "  resolutions: \(Self.list(t.resolutions))",
            "  tokens: \(Self.list([t.tokens.lowerBound, t.tokens.upperBound]))",
            "  flip: \(t.flip)",
            "  crop_scale: \(t.cropScale)",
        ]
        if let slots = t.slots { lines.append("  slots: \(slots)") }
        lines += [
            "workers:",
            "  min: \(workers.min)",
            "  max: \(workers.max)",
            "commit_every: \(commitEvery)",
            "checkpoint_every: \(checkpointEvery)",
            "ring_security: \(ringSecurity.rawValue)",
            "priority: \(priority)",
            "reduction: \(reduction.rawValue)",
            "step_hashes: \(stepHashes)",
        ]
        // Budgets travel in the model mapping, which already holds any train.budgets override.
        return lines.joined(separator: "\n") + "\n"
    }

    private static func list(_ values: [Int]) -> String {
        "[\(values.map(String.init).joined(separator: ", "))]"
    }

    /// A YAML double-quoted scalar, so that no path or name is read as a number, a boolean or a comment.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
