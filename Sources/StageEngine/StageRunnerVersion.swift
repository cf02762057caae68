/// The product's version, shown by `stagerunner --version` and in `initialize`.
public enum StageRunnerVersion {
    public static let current = "0.1.0"
}
