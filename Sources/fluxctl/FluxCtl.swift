import ArgumentParser

/// `fluxctl`: what users type to run FluxViT and, as the cluster parts land, to drive jobs.
@main
struct FluxCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fluxctl",
        abstract: "Run FluxViT models and (soon) drive a Flux cluster.",
        discussion: "Cluster commands (submit, status, logs, cancel, workers, results, up) arrive with the coordinator.",
        subcommands: [Infer.self, Train.self, Dataset.self, Keys.self])
}
