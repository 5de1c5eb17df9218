fn main() -> std::process::ExitCode {
    orgsync::memory::limit_arenas();
    orgsync::cli::main()
}
