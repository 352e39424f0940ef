fn main() -> std::process::ExitCode {
    cloudcfg::cli::main()
}
