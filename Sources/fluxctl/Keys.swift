import ArgumentParser
import FluxWire
import Foundation

/// `fluxctl keys`: CURVE key pairs for coordinators, workers and clients.
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make CURVE key pairs.",
        subcommands: [Generate.self])
}

extension Keys {
    /// `fluxctl keys generate NAME`: writes NAME.key and NAME.pub.
    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub.",
            discussion: """
                NAME.key holds the public and the secret key and must stay private. NAME.pub is one allowlist \
                line ('KEY NAME'): append it to the coordinator's workers.allow or clients.allow to let this \
                key in. Existing files are kept unless --force is given.
                """)

        @Argument(help: "Name of the pair; the files are NAME.key and NAME.pub.")
        var name: String

        @Option(help: ArgumentHelp("Folder to write into (created if needed).", valueName: "dir"))
        var dir: String = "."

        @Flag(help: "Replace existing NAME.key and NAME.pub.")
        var force = false

        func run() throws {
            let (pair, files) = try reportingErrors {
                let pair = try CurveKeyPair.generate()
                let files = try pair.save(name: name, in: URL(fileURLWithPath: dir, isDirectory: true),
                                          overwrite: force)
                return (pair, files)
            }
            print("wrote \(files.key.path) (secret, mode 0600) and \(files.pub.path)")
            print("public key: \(pair.publicKey.z85)")
        }
    }
}
