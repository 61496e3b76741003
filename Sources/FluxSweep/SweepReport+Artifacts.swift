import FluxFiles
import Foundation

extension SweepReport {
    /// The files `writeArtifacts(to:)` writes, in the order it writes them.
    public static let artifactNames = ["report.json", "report.md", "report.csv", "report.txt", "plot.svg"]

    /// Writes every form of the report into `directory` (created if missing): `report.json`, `report.md`,
    /// `report.csv`, `report.txt` (the terminal table) and `plot.svg`. Each file is replaced atomically, so a
    /// reader sees the previous report or the new one, never half of one.
    ///
    /// - Throws: `FileWriteError` naming the file or folder that could not be written.
    public func writeArtifacts(to directory: URL) throws(FileWriteError) {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw .failed(path: directory.path, operation: "mkdir", reason: error.localizedDescription)
        }
        let contents = [
            render(.json), render(.markdown), render(.csv), render(.table), SweepPlot.svg(self),
        ]
        for (name, text) in zip(Self.artifactNames, contents) {
            try AtomicFile.write(text, to: directory.appendingPathComponent(name))
        }
    }
}
