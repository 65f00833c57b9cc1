fn main() -> std::process::ExitCode {
    iocmatch::cli::main()
}
